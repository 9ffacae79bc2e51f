// The benchmark page: runs `benchmarkVision` in the worker and tabulates the results.
// `?shape=ViT-B/32&backend=cpu&batch=1&runs=3&autorun=1` drives it headlessly (`&analysis=1`
// adds the applications: one image's analysis and segmentation through the Engine with a bundle
// of the paper's sizes; `&probe=1` the matrix-product probe on the forward's shapes): when a run ends (well or not) `document.body.dataset.done` is "1" and
// `<pre id="result">` holds the JSON (`{"error": "..."}` after a failure; `<main data-status>`
// is then "error").

import { WorkerClient } from "./client";
import { byId } from "./dom";
import { formatMs, formatThreads } from "./format";
import { ensureIsolation } from "./isolation";
import { isBackendChoice, isBenchShape, type BackendChoice, type BenchmarkResult, type BenchShape, type MatmulTiming } from "./protocol";

const MAX_BATCH = 64;
const MAX_RUNS = 100;

interface BenchSettings {
  shape: BenchShape;
  backend: BackendChoice;
  batch: number;
  runs: number;
  /** Also time the applications (`benchmarkVision`'s fifth argument). */
  analysis: boolean;
  /** Also run the matrix-product probe (`benchmarkVision`'s sixth argument). */
  probe: boolean;
}

const ui = {
  main: byId("bench", HTMLElement),
  form: byId("bench-form", HTMLFormElement),
  fieldset: byId("bench-fieldset", HTMLFieldSetElement),
  shape: byId("shape", HTMLSelectElement),
  backend: byId("backend", HTMLSelectElement),
  batch: byId("batch", HTMLInputElement),
  runs: byId("runs", HTMLInputElement),
  analysis: byId("analysis", HTMLSelectElement),
  probe: byId("probe", HTMLSelectElement),
  status: byId("status", HTMLElement),
  results: byId("results", HTMLTableElement),
  matmul: byId("matmul", HTMLTableElement),
  steps: byId("steps", HTMLTableElement),
  result: byId("result", HTMLPreElement),
};

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function parseCount(what: string, text: string, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`${what} must be a whole number from 1 to ${max}, not “${text}”.`);
  }
  return value;
}

function parseFlag(what: string, text: string): boolean {
  if (text === "1" || text === "0") return text === "1";
  throw new Error(`${what} must be 1 or 0, not “${text}”.`);
}

function parseSettings(values: {
  shape: string;
  backend: string;
  batch: string;
  runs: string;
  analysis: string;
  probe: string;
}): BenchSettings {
  if (!isBenchShape(values.shape)) throw new Error(`Unknown shape “${values.shape}”: use ViT-B/32, ViT-B/16 or ViT-L/14.`);
  if (!isBackendChoice(values.backend)) throw new Error(`Unknown backend “${values.backend}”: use auto, webgpu or cpu.`);
  return {
    shape: values.shape,
    backend: values.backend,
    batch: parseCount("The batch size", values.batch, MAX_BATCH),
    runs: parseCount("The number of runs", values.runs, MAX_RUNS),
    analysis: parseFlag("The analysis setting", values.analysis),
    probe: parseFlag("The probe setting", values.probe),
  };
}

function formSettings(): BenchSettings {
  return parseSettings({
    shape: ui.shape.value,
    backend: ui.backend.value,
    batch: ui.batch.value,
    runs: ui.runs.value,
    analysis: ui.analysis.value,
    probe: ui.probe.value,
  });
}

const NUMBER_FIELDS = ["batch", "runs", "load_ms", "first_ms", "mean_ms_per_image"] as const;
const ANALYSIS_NUMBER_FIELDS = ["bundle_load_ms", "analysis_ms_per_image", "segmentation_ms"] as const;
const MATMUL_NUMBER_FIELDS = ["m", "k", "n", "ms", "gflops"] as const;

function asRecord(value: unknown): Record<string, unknown> {
  return (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
}

/** The JSON of `benchmarkVision`, checked (the `analysis` entry only when present). */
function parseResult(json: string): BenchmarkResult {
  const record = asRecord(JSON.parse(json));
  const bad: string[] = NUMBER_FIELDS.filter((key) => typeof record[key] !== "number");
  if (record.analysis !== undefined) {
    const analysis = asRecord(record.analysis);
    bad.push(...ANALYSIS_NUMBER_FIELDS.filter((key) => typeof analysis[key] !== "number").map((key) => `analysis.${key}`));
  }
  if (record.matmul !== undefined) {
    const matmul = asRecord(record.matmul);
    const timings = Array.isArray(matmul.timings) ? matmul.timings.map(asRecord) : [];
    if (typeof matmul.threads !== "number" || timings.length === 0) bad.push("matmul");
    if (
      !Array.isArray(record.steps) ||
      !record.steps.every((s) => typeof asRecord(s).ms === "number" && typeof asRecord(s).step === "string")
    )
      bad.push("steps");
    timings.forEach((timing, i) =>
      bad.push(...MATMUL_NUMBER_FIELDS.filter((key) => typeof timing[key] !== "number").map((key) => `matmul.timings[${i}].${key}`)),
    );
  }
  if (typeof record.backend !== "string" || typeof record.shape !== "string" || typeof record.threads !== "number" || bad.length > 0) {
    throw new Error(`benchmarkVision returned unexpected JSON: ${json}`);
  }
  return record as unknown as BenchmarkResult;
}

function cell(row: HTMLTableRowElement, text: string): void {
  row.insertCell().textContent = text;
}

function addRow(result: BenchmarkResult, adapter: string | null): void {
  const body = ui.results.tBodies[0] ?? ui.results.createTBody();
  const row = body.insertRow();
  cell(row, result.shape);
  cell(row, adapter === null ? result.backend : `${result.backend} (${adapter})`);
  cell(row, String(result.threads));
  cell(row, String(result.batch));
  cell(row, String(result.runs));
  cell(row, formatMs(result.load_ms));
  cell(row, formatMs(result.first_ms));
  cell(row, formatMs(result.mean_ms_per_image));
  cell(row, result.mean_ms_per_image > 0 ? (1000 / result.mean_ms_per_image).toPrecision(3) : "–");
  const analysis = result.analysis;
  cell(row, analysis === undefined ? "–" : formatMs(analysis.bundle_load_ms));
  cell(row, analysis === undefined ? "–" : formatMs(analysis.analysis_ms_per_image));
  cell(row, analysis === undefined ? "–" : formatMs(analysis.segmentation_ms));
}

/** One row per step of the profiled block: backend, batch, step, ms and share of the block. */
function addStepRows(result: BenchmarkResult): void {
  if (result.steps === undefined) return;
  const body = ui.steps.tBodies[0] ?? ui.steps.createTBody();
  const block = result.steps[result.steps.length - 1]?.ms ?? 0;
  for (const step of result.steps) {
    const row = body.insertRow();
    cell(row, result.backend);
    cell(row, String(result.threads));
    cell(row, String(result.batch));
    cell(row, step.step);
    cell(row, formatMs(step.ms));
    cell(row, block > 0 ? `${((100 * step.ms) / block).toFixed(1)} %` : "–");
  }
}

/** One row per product of the probe: which, its shape, the threads, ms and GFLOP/s. */
function addMatmulRows(result: BenchmarkResult): void {
  if (result.matmul === undefined) return;
  const body = ui.matmul.tBodies[0] ?? ui.matmul.createTBody();
  for (const timing of result.matmul.timings) {
    const row = body.insertRow();
    cell(row, result.backend);
    cell(row, String(result.threads));
    cell(row, `${timing.name} (${timing.kernel})`);
    cell(row, matmulShape(timing));
    cell(row, formatMs(timing.ms));
    cell(row, timing.gflops.toPrecision(3));
  }
}

function matmulShape(timing: MatmulTiming): string {
  return `[${timing.m},${timing.k}]×[${timing.k},${timing.n}]`;
}

/** The status line's summary of a result. */
function summary(result: BenchmarkResult): string {
  const forward = `${formatMs(result.mean_ms_per_image)} per image${result.backend === "cpu" ? ` on ${formatThreads(result.threads)}` : ""}`;
  const analysis = result.analysis;
  const probe =
    result.matmul === undefined
      ? ""
      : `; matrix products ${Math.min(...result.matmul.timings.map((t) => t.gflops)).toPrecision(3)}–${Math.max(...result.matmul.timings.map((t) => t.gflops)).toPrecision(3)} GFLOP/s`;
  if (analysis === undefined) return forward + probe;
  return `${forward}${probe}; analysis ${formatMs(analysis.analysis_ms_per_image)} per image, segmentation ${formatMs(analysis.segmentation_ms)}`;
}

function finish(status: "done" | "error", text: string, json: string): void {
  ui.result.textContent = json;
  ui.status.textContent = text;
  ui.main.dataset.status = status;
  ui.main.removeAttribute("aria-busy");
  ui.fieldset.disabled = false;
  document.body.dataset.done = "1";
}

async function run(client: WorkerClient, settings: BenchSettings): Promise<void> {
  delete document.body.dataset.done;
  ui.main.dataset.status = "running";
  ui.main.setAttribute("aria-busy", "true");
  ui.fieldset.disabled = true;
  const label = `${settings.shape} on ${settings.backend}, batch ${settings.batch}, ${settings.runs} run${settings.runs === 1 ? "" : "s"}${settings.analysis ? ", with the analysis" : ""}${settings.probe ? ", with the matrix-product probe" : ""}`;
  ui.status.textContent = `Running ${label}… (the page stays responsive; the work happens in a Web Worker)`;
  try {
    const response = await client.benchmark(
      settings.shape,
      settings.backend,
      settings.batch,
      settings.runs,
      settings.analysis,
      settings.probe,
    );
    const result = parseResult(response.json);
    addRow(result, response.adapter);
    addMatmulRows(result);
    addStepRows(result);
    const where =
      response.adapter !== null ? ` (${result.backend}: ${response.adapter})` : settings.backend === "auto" ? ` (${result.backend})` : "";
    finish("done", `Finished ${label}${where}: ${summary(result)}.`, JSON.stringify(result, null, 2));
  } catch (error) {
    console.error(error);
    finish("error", `The benchmark failed: ${message(error)}`, JSON.stringify({ error: message(error) }, null, 2));
  }
}

function main(): void {
  const client = new WorkerClient();
  const params = new URLSearchParams(location.search);

  // Address settings fill the form; bad ones are reported (and end an autorun).
  let addressError: string | null = null;
  try {
    const settings = parseSettings({
      shape: params.get("shape") ?? ui.shape.value,
      backend: params.get("backend") ?? ui.backend.value,
      batch: params.get("batch") ?? ui.batch.value,
      runs: params.get("runs") ?? ui.runs.value,
      analysis: params.get("analysis") ?? ui.analysis.value,
      probe: params.get("probe") ?? ui.probe.value,
    });
    ui.shape.value = settings.shape;
    ui.backend.value = settings.backend;
    ui.batch.value = String(settings.batch);
    ui.runs.value = String(settings.runs);
    ui.analysis.value = settings.analysis ? "1" : "0";
    ui.probe.value = settings.probe ? "1" : "0";
  } catch (error) {
    addressError = `The address has a bad setting: ${message(error)}`;
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    let settings: BenchSettings;
    try {
      settings = formSettings();
    } catch (error) {
      finish("error", message(error), JSON.stringify({ error: message(error) }, null, 2));
      return;
    }
    const address = new URLSearchParams({
      ...settings,
      batch: String(settings.batch),
      runs: String(settings.runs),
      analysis: settings.analysis ? "1" : "0",
      probe: settings.probe ? "1" : "0",
    });
    history.replaceState(null, "", `?${address}`);
    void run(client, settings);
  });

  if (addressError !== null) {
    finish("error", addressError, JSON.stringify({ error: addressError }, null, 2));
  } else if (params.get("autorun") === "1") {
    ui.form.requestSubmit();
  }
}

ensureIsolation()
  .then((reloading) => reloading || main())
  .catch((error: unknown) => {
    ui.status.textContent = `The benchmark page failed to start: ${message(error)}`;
    ui.main.dataset.status = "error";
    document.body.dataset.done = "1";
  });

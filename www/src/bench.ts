// The benchmark page: runs `benchmarkVision` in the worker and tabulates the results.
// `?shape=ViT-B/32&backend=cpu&batch=1&runs=3&autorun=1` drives it headlessly (`&analysis=1`
// adds the applications: one image's analysis and segmentation through the Engine with a bundle
// of the paper's sizes; `&probe=1` the matrix-product probe on the forward's shapes): when a run ends (well or not) `document.body.dataset.done` is "1" and
// `<pre id="result">` holds the JSON (`{"error": "..."}` after a failure; `<main data-status>`
// is then "error").

import { WorkerClient } from "./client";
import { append, byId, el } from "./dom";
import { formatMs, formatThreads } from "./format";
import { ensureIsolation } from "./isolation";
import { isBackendChoice, isBenchShape, type BenchmarkRequest, type BenchmarkResult, type MatmulTiming } from "./protocol";

const MAX_BATCH = 64;
const MAX_RUNS = 100;

/** What a run times: the worker's benchmark request without its envelope. */
type BenchSettings = Omit<BenchmarkRequest, "id" | "type">;

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

/** A table's column: its header, and its cell's text for one row's data. */
interface Column<Row> {
  header: string;
  cell: (row: Row) => string;
}

/** Writes `table`'s header row (the HTML holds only the table and its caption). */
function writeHeader<Row>(table: HTMLTableElement, columns: Column<Row>[]): void {
  append(table.createTHead().insertRow(), ...columns.map(({ header }) => el("th", { scope: "col" }, header)));
}

/** Appends one body row per item of `rows`. */
function addRows<Row>(table: HTMLTableElement, columns: Column<Row>[], rows: Row[]): void {
  const body = table.tBodies[0] ?? table.createTBody();
  for (const data of rows) {
    const row = body.insertRow();
    for (const { cell } of columns) row.insertCell().textContent = cell(data);
  }
}

const THREADS_COLUMN: Column<{ result: BenchmarkResult }> = { header: "Threads", cell: ({ result }) => String(result.threads) };

/** The probe's tables start with the run's backend and threads. */
const RUN_COLUMNS: Column<{ result: BenchmarkResult }>[] = [{ header: "Backend", cell: ({ result }) => result.backend }, THREADS_COLUMN];

/** A run: its settings, the forward's times and, when asked, the applications'. */
const RESULT_COLUMNS: Column<{ result: BenchmarkResult; adapter: string | null }>[] = [
  { header: "Shape", cell: ({ result }) => result.shape },
  { header: "Backend", cell: ({ result, adapter }) => (adapter === null ? result.backend : `${result.backend} (${adapter})`) },
  THREADS_COLUMN,
  { header: "Batch", cell: ({ result }) => String(result.batch) },
  { header: "Runs", cell: ({ result }) => String(result.runs) },
  { header: "Load", cell: ({ result }) => formatMs(result.load_ms) },
  { header: "First run", cell: ({ result }) => formatMs(result.first_ms) },
  { header: "Mean per image", cell: ({ result }) => formatMs(result.mean_ms_per_image) },
  { header: "Images/s", cell: ({ result }) => (result.mean_ms_per_image > 0 ? (1000 / result.mean_ms_per_image).toPrecision(3) : "–") },
  { header: "Bundle load", cell: ({ result }) => optionalMs(result.analysis?.bundle_load_ms) },
  { header: "Analysis per image", cell: ({ result }) => optionalMs(result.analysis?.analysis_ms_per_image) },
  { header: "Segmentation", cell: ({ result }) => optionalMs(result.analysis?.segmentation_ms) },
];

/** A product of the probe: which, its shape, ms and GFLOP/s. */
const MATMUL_COLUMNS: Column<{ result: BenchmarkResult; timing: MatmulTiming }>[] = [
  ...RUN_COLUMNS,
  { header: "Product", cell: ({ timing }) => `${timing.name} (${timing.kernel})` },
  { header: "Shape", cell: ({ timing }) => `[${timing.m},${timing.k}]×[${timing.k},${timing.n}]` },
  { header: "Mean", cell: ({ timing }) => formatMs(timing.ms) },
  { header: "GFLOP/s", cell: ({ timing }) => timing.gflops.toPrecision(3) },
];

/** A step of the profiled block: ms and share of the whole block (the last step). */
const STEP_COLUMNS: Column<{ result: BenchmarkResult; step: { step: string; ms: number }; block: number }>[] = [
  ...RUN_COLUMNS,
  { header: "Batch", cell: ({ result }) => String(result.batch) },
  { header: "Step", cell: ({ step }) => step.step },
  { header: "Mean", cell: ({ step }) => formatMs(step.ms) },
  { header: "Share of the block", cell: ({ step, block }) => (block > 0 ? `${((100 * step.ms) / block).toFixed(1)} %` : "–") },
];

function optionalMs(ms: number | undefined): string {
  return ms === undefined ? "–" : formatMs(ms);
}

/** Adds a result's rows to the three tables. */
function addResultRows(result: BenchmarkResult, adapter: string | null): void {
  addRows(ui.results, RESULT_COLUMNS, [{ result, adapter }]);
  addRows(
    ui.matmul,
    MATMUL_COLUMNS,
    (result.matmul?.timings ?? []).map((timing) => ({ result, timing })),
  );
  const steps = result.steps ?? [];
  const block = steps[steps.length - 1]?.ms ?? 0;
  addRows(
    ui.steps,
    STEP_COLUMNS,
    steps.map((step) => ({ result, step, block })),
  );
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
    addResultRows(result, response.adapter);
    const where =
      response.adapter !== null ? ` (${result.backend}: ${response.adapter})` : settings.backend === "auto" ? ` (${result.backend})` : "";
    finish("done", `Finished ${label}${where}: ${summary(result)}.`, JSON.stringify(result, null, 2));
  } catch (error) {
    console.error(error);
    finish("error", `The benchmark failed: ${message(error)}`, JSON.stringify({ error: message(error) }, null, 2));
  }
}

function main(): void {
  writeHeader(ui.results, RESULT_COLUMNS);
  writeHeader(ui.matmul, MATMUL_COLUMNS);
  writeHeader(ui.steps, STEP_COLUMNS);
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

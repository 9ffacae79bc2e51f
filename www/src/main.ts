// The demo page: loads CLIP in the worker, analyses the sample image, and compares it with
// typed texts. `<main data-status>` is "loading" until the sample image is analysed, then
// "ready"; any failure on the way shows a readable message and sets it to "error".

import { WorkerClient } from "./client";
import { formatBytes, formatMs, formatValue } from "./format";
import { isBackendChoice, type BackendChoice, type ProgressEvent, type ReadyResponse } from "./protocol";
import { cosine, norm } from "./vector";

const DEFAULT_WEIGHTS = "models/tiny/model.safetensors";
const DEFAULT_CONFIG = "models/tiny/config.json";
const SAMPLE_IMAGE = "samples/cat.jpg";
const HISTORY_LENGTH = 8;

type Status = "loading" | "ready" | "error";

// ---- Settings from the address ----

interface Settings {
  weightsUrl: string;
  /** null: infer the shapes from the weights. */
  configUrl: string | null;
  backend: BackendChoice;
  /** Whether the weights are the bundled tiny test model. */
  defaultModel: boolean;
}

function absoluteUrl(what: string, value: string): string {
  try {
    return new URL(value, document.baseURI).href;
  } catch {
    throw new Error(`The ${what} address “${value}” is not a valid URL.`);
  }
}

/** `?weights=URL&config=URL&backend=auto|webgpu|cpu`. Own weights without a config: inferred. */
function readSettings(search: string): Settings {
  const params = new URLSearchParams(search);
  const weights = params.get("weights") || null;
  const config = params.get("config");
  const backend = params.get("backend") || "auto";
  if (!isBackendChoice(backend)) {
    throw new Error(`Unknown backend “${backend}” in the address: use auto, webgpu or cpu.`);
  }
  const configValue = config !== null ? config || null : weights === null ? DEFAULT_CONFIG : null;
  return {
    weightsUrl: absoluteUrl("weights", weights ?? DEFAULT_WEIGHTS),
    configUrl: configValue === null ? null : absoluteUrl("config", configValue),
    backend,
    defaultModel: weights === null,
  };
}

// ---- The page's elements ----

function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`The page lacks the element #${id}.`);
  return found;
}

const ui = {
  main: byId("app", HTMLElement),
  status: byId("status", HTMLElement),
  errorPanel: byId("error", HTMLElement),
  errorMessage: byId("error-message", HTMLElement),
  backend: byId("backend", HTMLElement),
  weightsUrl: byId("weights-url", HTMLAnchorElement),
  configUrl: byId("config-url", HTMLElement),
  imageSize: byId("image-size", HTMLElement),
  modelNote: byId("model-note", HTMLElement),
  progress: byId("weights-progress", HTMLProgressElement),
  progressText: byId("weights-progress-text", HTMLElement),
  sample: byId("sample", HTMLImageElement),
  embedDim: byId("embed-dim", HTMLElement),
  embedNorm: byId("embed-norm", HTMLElement),
  embedHead: byId("embed-head", HTMLElement),
  embedTime: byId("embed-time", HTMLElement),
  textForm: byId("text-form", HTMLFormElement),
  textFieldset: byId("text-fieldset", HTMLFieldSetElement),
  textInput: byId("text-input", HTMLInputElement),
  textResult: byId("text-result", HTMLElement),
  similarity: byId("similarity", HTMLOutputElement),
  similarityMeter: byId("similarity-meter", HTMLMeterElement),
  history: byId("history", HTMLOListElement),
};

function setStatus(status: Status, text: string): void {
  ui.main.dataset.status = status;
  ui.main.setAttribute("aria-busy", String(status === "loading"));
  ui.status.textContent = text;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function showFatal(error: unknown): void {
  console.error(error);
  ui.errorMessage.textContent = message(error);
  ui.errorPanel.hidden = false;
  ui.textFieldset.disabled = true;
  if (ui.main.dataset.weights !== "downloaded") ui.progressText.textContent = "Stopped.";
  setStatus("error", "The demo stopped because of an error (details below).");
  ui.errorPanel.focus();
}

// ---- Model loading ----

function showProgress(event: ProgressEvent): void {
  if (event.file !== "weights") return;
  const seconds = event.elapsedMs / 1000;
  const speed = seconds > 0 ? `${formatBytes(event.loaded / seconds)}/s` : "";
  const { progress } = ui;
  let amount: string;
  if (event.total !== null && event.total > 0) {
    const percent = `${Math.floor((100 * event.loaded) / event.total)}%`;
    progress.max = event.total;
    progress.value = event.loaded;
    progress.textContent = percent;
    amount = `${formatBytes(event.loaded)} of ${formatBytes(event.total)} (${percent})`;
  } else {
    if (event.done) {
      progress.max = 1;
      progress.value = 1;
    } else {
      progress.removeAttribute("value"); // indeterminate: the size is unknown
    }
    amount = `${formatBytes(event.loaded)} (size unknown)`;
  }
  ui.progressText.textContent = event.done
    ? `Downloaded ${formatBytes(event.loaded)} in ${formatMs(event.elapsedMs)}${speed && `, ${speed}`}.`
    : `${amount}${speed && ` at ${speed}`}`;
  if (event.done) {
    ui.main.dataset.weights = "downloaded";
    setStatus("loading", "Building the model…");
  }
}

function describeBackend(ready: ReadyResponse, requested: BackendChoice): string {
  if (ready.backend === "webgpu") return ready.adapter === null ? "WebGPU" : `WebGPU (${ready.adapter})`;
  if (ready.webgpuUnavailable !== null) return `CPU (WebGPU unavailable: ${ready.webgpuUnavailable})`;
  return requested === "cpu" ? "CPU (WebGPU not requested: backend=cpu)" : "CPU (WebGPU unavailable)";
}

async function fetchSample(url: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`Could not download the sample image ${url}: ${message(error)}`);
  }
  if (!response.ok) throw new Error(`Could not download the sample image ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

// ---- Text comparison ----

function addHistory(text: string, similarity: number): void {
  const item = document.createElement("li");
  const quote = document.createElement("q");
  quote.textContent = text;
  const value = document.createElement("span");
  value.className = "history-value";
  value.textContent = formatValue(similarity);
  item.append(quote, " ", value);
  ui.history.prepend(item);
  while (ui.history.children.length > HISTORY_LENGTH) ui.history.lastElementChild?.remove();
}

function enableTextComparison(client: WorkerClient, imageEmbedding: Float32Array): void {
  ui.textFieldset.disabled = false;
  let busy = false;
  ui.textForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.textInput.value.trim();
    if (busy) return;
    if (text === "") {
      ui.similarity.value = "type a text first";
      ui.textInput.focus();
      return;
    }
    busy = true;
    ui.textFieldset.disabled = true;
    ui.textResult.dataset.status = "loading";
    ui.textResult.setAttribute("aria-busy", "true");
    ui.similarity.value = "computing…";
    client
      .embedText(text)
      .then((response) => {
        const similarity = cosine(imageEmbedding, response.values);
        ui.similarity.value = `${formatValue(similarity)} for “${text}” (${formatMs(response.ms)})`;
        ui.similarity.dataset.value = String(similarity);
        ui.similarityMeter.value = similarity;
        ui.similarityMeter.hidden = false;
        ui.similarityMeter.textContent = formatValue(similarity);
        ui.textResult.dataset.status = "ready";
        addHistory(text, similarity);
      })
      .catch((error: unknown) => {
        console.error(error);
        ui.similarity.value = `failed: ${message(error)}`;
        delete ui.similarity.dataset.value;
        ui.textResult.dataset.status = "error";
      })
      .finally(() => {
        busy = false;
        ui.textFieldset.disabled = false;
        ui.textResult.removeAttribute("aria-busy");
        ui.textInput.focus();
      });
  });
}

// ---- Start ----

async function start(): Promise<void> {
  setStatus("loading", "Reading the settings…");
  const settings = readSettings(location.search);
  ui.weightsUrl.href = settings.weightsUrl;
  ui.weightsUrl.textContent = settings.weightsUrl;
  ui.configUrl.textContent = settings.configUrl ?? "none (shapes inferred from the weights)";
  ui.modelNote.hidden = !settings.defaultModel;

  const client = new WorkerClient();
  const sample = fetchSample(new URL(SAMPLE_IMAGE, document.baseURI).href);
  sample.catch(() => undefined); // reported below if the model loads; otherwise the load error wins

  setStatus("loading", "Downloading the model…");
  const ready = await client.load(settings.weightsUrl, settings.configUrl, settings.backend, showProgress);
  ui.backend.textContent = describeBackend(ready, settings.backend);
  ui.backend.dataset.backend = ready.backend;
  ui.main.dataset.backend = ready.backend;
  ui.imageSize.textContent = `${ready.imageSize} × ${ready.imageSize} pixels`;

  setStatus("loading", "Analysing the sample image…");
  const embedding = await client.embedImage(await sample);
  const values = embedding.values;
  if (values.length === 0) throw new Error("The model returned an empty image embedding.");
  ui.embedDim.textContent = String(values.length);
  ui.embedNorm.textContent = formatValue(norm(values));
  ui.embedHead.textContent = Array.from(values.subarray(0, 8), (value) => formatValue(value)).join(", ");
  ui.embedTime.textContent = `${formatMs(embedding.ms)} (model built in ${formatMs(ready.initMs)})`;

  enableTextComparison(client, values);
  setStatus("ready", `Ready on ${ready.backend === "webgpu" ? "WebGPU" : "the CPU"}. Type a text to compare it with the image.`);
}

window.addEventListener("unhandledrejection", (event) => showFatal(event.reason));
window.addEventListener("error", (event) => showFatal(event.error ?? event.message));
start().catch(showFatal);

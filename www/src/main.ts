// The app: loads the model and its bundle in a worker (WebGPU, else the CPU), then routes
// between the image lab, the neuron explorer (with word pages and lists of neurons) and the
// adversarial miner. `<main data-status>`
// is "loading" until the first view has its result, then "ready"; a failure shows a readable
// message and sets it to "error".

import { AdversarialMiner } from "./miner";
import { byId, el, errorMessage } from "./dom";
import { NeuronExplorer } from "./explorer";
import { formatBytes, formatMs, formatThreads } from "./format";
import { ensureIsolation } from "./isolation";
import { ImageLab } from "./lab";
import { ListStore, ListView, wireListLink } from "./lists";
import { isBackendChoice, type BackendChoice, type ProgressEvent, type ReadyResponse } from "./protocol";
import { parseRoute, type ViewName } from "./routes";
import { Session, type Sources } from "./session";
import { OPENAI_VIT_B_32, readSettings, settingsHref } from "./settings";
import { pickedSources, sourceText, urlSources } from "./sources";
import { WordPageView } from "./word-page";

type Status = "loading" | "ready" | "error";

const ui = {
  main: byId("app", HTMLElement),
  status: byId("status", HTMLElement),
  notice: byId("notice", HTMLElement),
  errorPanel: byId("error", HTMLElement),
  errorMessage: byId("error-message", HTMLElement),
  backend: byId("backend", HTMLElement),
  backendChoice: byId("backend-choice", HTMLSelectElement),
  weightsSource: byId("weights-source", HTMLElement),
  bundleSource: byId("bundle-source", HTMLElement),
  modelFacts: byId("model-facts", HTMLElement),
  modelNote: byId("model-note", HTMLElement),
  downloads: byId("downloads", HTMLUListElement),
  downloadsPanel: byId("downloads-panel", HTMLDetailsElement),
  urlForm: byId("url-form", HTMLFormElement),
  weightsUrl: byId("weights-url", HTMLInputElement),
  configUrl: byId("config-url", HTMLInputElement),
  bundleUrl: byId("bundle-url", HTMLInputElement),
  presetOpenAi: byId("preset-openai", HTMLButtonElement),
  fileForm: byId("file-form", HTMLFormElement),
  weightsFile: byId("weights-file", HTMLInputElement),
  bundleFiles: byId("bundle-files", HTMLInputElement),
  configFile: byId("config-file", HTMLInputElement),
};

function setStatus(status: Status, text: string): void {
  // Time to interactive, for the e2e tests and the curious: the first "ready".
  if (status === "ready" && performance.getEntriesByName("clip-lens-ready").length === 0) performance.mark("clip-lens-ready");
  ui.main.dataset["status"] = status;
  ui.main.setAttribute("aria-busy", String(status === "loading"));
  ui.status.textContent = text;
}

function showFatal(error: unknown): void {
  console.error(error);
  ui.errorMessage.textContent = errorMessage(error);
  ui.errorPanel.hidden = false;
  setStatus("error", "The page stopped because of an error (details below).");
  ui.errorPanel.focus();
}

function notify(text: string): void {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

// ---- Downloads ----

const progressRows = new Map<string, { progress: HTMLProgressElement; text: HTMLElement }>();

function showProgress(event: ProgressEvent): void {
  let row = progressRows.get(event.file);
  if (!row) {
    const progress = el("progress", { max: 1, value: 0, "aria-label": `${event.file} download` });
    const text = el("span", { class: "progress-text" });
    ui.downloads.append(el("li", { "data-file": event.file }, el("span", { class: "download-name" }, event.file), progress, text));
    row = { progress, text };
    progressRows.set(event.file, row);
  }
  const { progress, text } = row;
  const seconds = event.elapsedMs / 1000;
  const speed = seconds > 0 && event.source === "network" ? ` at ${formatBytes(event.loaded / seconds)}/s` : "";
  if (event.total !== null && event.total > 0) {
    progress.max = event.total;
    progress.value = event.loaded;
  } else if (event.done) {
    progress.max = 1;
    progress.value = 1;
  } else {
    progress.removeAttribute("value"); // indeterminate: the size is unknown
  }
  const amount =
    event.total !== null
      ? `${formatBytes(event.loaded)} of ${formatBytes(event.total)} (${Math.floor((100 * event.loaded) / Math.max(1, event.total))}%)`
      : `${formatBytes(event.loaded)} (size unknown)`;
  const from = { network: "downloaded", cache: "from the browser's cache", local: "local file" }[event.source];
  text.textContent = event.done
    ? `${formatBytes(event.loaded)}, ${from}${event.source === "network" ? ` in ${formatMs(event.elapsedMs)}` : ""}${speed}`
    : `${amount}${speed}`;
  row.progress.closest("li")?.setAttribute("data-source", event.source);
}

function describeBackend(ready: ReadyResponse, requested: BackendChoice): string {
  if (ready.backend === "webgpu") return ready.adapter === null ? "WebGPU" : `WebGPU (${ready.adapter})`;
  const threads = `${formatThreads(ready.threads)}${ready.singleThreadReason === null ? "" : `: ${ready.singleThreadReason}`}`;
  if (ready.webgpuUnavailable !== null) return `CPU, ${threads} (WebGPU unavailable: ${ready.webgpuUnavailable})`;
  return requested === "cpu" ? `CPU, ${threads} (chosen)` : `CPU, ${threads}`;
}

// ---- The app ----

const settings = (() => {
  try {
    return readSettings(location.search);
  } catch (error) {
    showFatal(error);
    throw error;
  }
})();
if (settings.embed) document.body.classList.add("embed");
ui.backendChoice.value = settings.backend;

const session = new Session(
  urlSources(settings),
  settings.backend,
  {
    progress: showProgress,
    ready: (ready, reason) => onReady(ready, reason),
  },
  settings.simulateDeviceLoss,
);

const lab = new ImageLab(
  {
    view: byId("view-lab", HTMLElement),
    samples: byId("samples", HTMLElement),
    fileInput: byId("lab-file", HTMLInputElement),
    dropZone: byId("lab-drop", HTMLElement),
    cameraButton: byId("camera-button", HTMLButtonElement),
    camera: byId("camera", HTMLElement),
    queue: byId("lab-queue", HTMLOListElement),
    queueStatus: byId("queue-status", HTMLElement),
    cancelButton: byId("queue-cancel", HTMLButtonElement),
    stopButton: byId("lab-stop", HTMLButtonElement),
    result: byId("lab-result", HTMLElement),
    image: byId("lab-image", HTMLImageElement),
    overlay: byId("lab-overlay", HTMLCanvasElement),
    caption: byId("lab-caption", HTMLElement),
    classes: byId("lab-classes", HTMLOListElement),
    concepts: byId("lab-concepts", HTMLOListElement),
    neurons: byId("lab-neurons", HTMLElement),
    timings: byId("lab-timings", HTMLElement),
    conceptForm: byId("concept-form", HTMLFormElement),
    conceptInput: byId("concept-input", HTMLInputElement),
    classList: byId("class-names", HTMLDataListElement),
    opacity: byId("opacity", HTMLInputElement),
    mask: byId("mask-toggle", HTMLInputElement),
    segmentInfo: byId("segment-info", HTMLElement),
    exports: byId("lab-export", HTMLElement),
    ablation: {
      panel: byId("ablation", HTMLElement),
      neuronsForm: byId("ablate-neurons-form", HTMLFormElement),
      neurons: byId("ablate-neurons", HTMLInputElement),
      layerForm: byId("ablate-layer-form", HTMLFormElement),
      layer: byId("ablate-layer", HTMLSelectElement),
      result: byId("ablation-result", HTMLElement),
    },
  },
  session,
  settings.concept ?? "predicted",
);

const myList = new ListStore();
wireListLink(myList, byId("list-link", HTMLAnchorElement), byId("list-count", HTMLElement));

const explorer = new NeuronExplorer(
  {
    view: byId("view-explorer", HTMLElement),
    pickForm: byId("neuron-pick", HTMLFormElement),
    layer: byId("layer-select", HTMLSelectElement),
    neuron: byId("neuron-input", HTMLInputElement),
    previous: byId("neuron-previous", HTMLButtonElement),
    next: byId("neuron-next", HTMLButtonElement),
    card: byId("neuron-card", HTMLElement),
    searchForm: byId("search-form", HTMLFormElement),
    searchInput: byId("search-input", HTMLInputElement),
    searchResult: byId("search-result", HTMLElement),
  },
  session,
  myList,
);

const lists = new ListView(
  {
    view: byId("view-list", HTMLElement),
    form: byId("list-form", HTMLFormElement),
    spec: byId("list-spec", HTMLInputElement),
    copy: byId("list-copy", HTMLButtonElement),
    copyStatus: byId("list-copy-status", HTMLElement),
    copyField: byId("list-copy-field", HTMLInputElement),
    cards: byId("list-cards", HTMLElement),
  },
  session,
  myList,
);

const wordPage = new WordPageView(
  { view: byId("view-word", HTMLElement), title: byId("word-title", HTMLElement), result: byId("word-result", HTMLElement) },
  session,
);

const miner = new AdversarialMiner(
  {
    form: byId("miner-form", HTMLFormElement),
    class0: byId("class0", HTMLInputElement),
    class1: byId("class1", HTMLInputElement),
    neurons: byId("miner-neurons", HTMLInputElement),
    words: byId("miner-words", HTMLInputElement),
    block: byId("miner-block", HTMLInputElement),
    classList: byId("miner-classes", HTMLDataListElement),
    result: byId("miner-result", HTMLElement),
    testZone: byId("miner-test", HTMLElement),
    testInput: byId("miner-file", HTMLInputElement),
    testResults: byId("miner-results", HTMLOListElement),
    testSummary: byId("miner-summary", HTMLElement),
  },
  session,
);

function onReady(ready: ReadyResponse, reason: string | null): void {
  ui.backend.textContent = describeBackend(ready, ui.backendChoice.value as BackendChoice);
  ui.backend.dataset["backend"] = ready.backend;
  ui.main.dataset["backend"] = ready.backend;
  const bundle = ready.bundle;
  ui.modelFacts.textContent =
    `${ready.imageSize}-pixel input, ${formatBytes(ready.weightsBytes)} of weights, built in ${formatMs(ready.initMs)}` +
    (bundle
      ? `; bundle of ${bundle.modelName}: layers ${bundle.layers.join(", ")}, ${bundle.neurons} neurons each, ${bundle.words} words, ${bundle.classes.length} classes, ${bundle.images} images`
      : "");
  for (const view of [lab, explorer, miner, lists, wordPage]) view.setBundle(bundle);
  ui.downloadsPanel.open = false;
  if (reason !== null) notify(reason);
}

// ---- Routes ----

function showView(name: ViewName): void {
  for (const section of document.querySelectorAll<HTMLElement>("section.view")) section.hidden = section.dataset["view"] !== name;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav.tabs a[data-view]")) {
    if (link.dataset["view"] === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Shows the route's view and loads what it needs; resolves when its result is shown. */
async function route(): Promise<void> {
  const target = parseRoute(location.hash);
  showView(target.view);
  if (target.view === "explorer") {
    const bundle = session.ready?.bundle;
    if (target.search !== null) await explorer.search(target.search);
    else await explorer.show(target.layer ?? bundle?.layers[0] ?? 0, target.neuron ?? 0);
  } else if (target.view === "list") {
    await lists.show(target.spec);
  } else if (target.view === "word") {
    await wordPage.show(target.word);
  } else if (target.view === "miner") {
    await miner.mine();
  }
}

// ---- Model and bundle choice ----

function wireSourceForms(): void {
  ui.weightsUrl.value = settings.demo ? "" : settings.weightsUrl;
  ui.configUrl.value = settings.demo || settings.configUrl === null ? "" : settings.configUrl;
  ui.bundleUrl.value = settings.demo || settings.bundleUrl === null ? "" : settings.bundleUrl;
  ui.presetOpenAi.addEventListener("click", () => {
    ui.weightsUrl.value = OPENAI_VIT_B_32.weights;
    ui.configUrl.value = OPENAI_VIT_B_32.config;
    ui.bundleUrl.focus();
  });
  ui.urlForm.addEventListener("submit", (event) => {
    event.preventDefault();
    location.href = settingsHref(ui.weightsUrl.value, ui.configUrl.value, ui.bundleUrl.value);
  });
  const loadFiles = async (files: File[]): Promise<void> => {
    await restart(ui.backendChoice.value as BackendChoice, await pickedSources(files));
  };
  ui.fileForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const files = [...(ui.weightsFile.files ?? []), ...(ui.bundleFiles.files ?? []), ...(ui.configFile.files ?? [])];
    loadFiles(files).catch(showFatal);
  });
  ui.fileForm.addEventListener("dragover", (event) => event.preventDefault());
  ui.fileForm.addEventListener("drop", (event) => {
    event.preventDefault();
    loadFiles([...(event.dataTransfer?.files ?? [])]).catch(showFatal);
  });
  ui.backendChoice.addEventListener("change", () => {
    const choice = ui.backendChoice.value;
    if (isBackendChoice(choice)) restart(choice).catch(showFatal);
  });
}

/** A new engine (another backend or other sources); the current view is shown again. */
async function restart(backend: BackendChoice, sources?: Sources): Promise<void> {
  ui.errorPanel.hidden = true;
  setStatus("loading", `Loading on ${backend}…`);
  progressRows.clear();
  ui.downloads.replaceChildren();
  ui.downloadsPanel.open = true;
  const ready = await session.start(backend, sources);
  if (sources) {
    ui.weightsSource.textContent = sourceText(sources.weights);
    ui.bundleSource.textContent = sourceText(sources.bundle);
    ui.modelNote.hidden = true;
  }
  if (ready.bundle) {
    await lab.refresh();
    await route();
  }
  setStatus("ready", readyText(ready));
}

// ---- Start ----

async function start(): Promise<void> {
  // Where the server cannot make the page cross-origin isolated, the service worker does, after one reload.
  if (await ensureIsolation()) return;
  const sources = urlSources(settings);
  ui.weightsSource.textContent = sourceText(sources.weights);
  ui.bundleSource.textContent = sourceText(sources.bundle);
  ui.modelNote.hidden = !settings.demo;
  wireSourceForms();

  setStatus("loading", "Downloading the model and its bundle…");
  const ready = await session.start();
  setStatus("loading", "Analysing…");
  window.addEventListener("hashchange", () => void route().catch(showFatal));

  const target = parseRoute(location.hash);
  if (settings.imageUrl !== null) {
    if (target.view !== "lab") location.hash = "#/lab";
    showView("lab");
    await lab.open(settings.imageUrl, settings.concept ?? "predicted");
  } else if (target.view === "lab") {
    showView("lab");
    if (ready.bundle) await lab.open("samples/cat.jpg");
  } else {
    await route();
  }
  setStatus("ready", readyText(session.ready ?? ready));
}

function readyText(ready: ReadyResponse): string {
  const where = ready.backend === "webgpu" ? "WebGPU" : "the CPU";
  return `Ready on ${where}.${ready.bundle ? "" : " No bundle is loaded: the image lab, the neurons and the adversarial words need one (?bundle=URL, or the bundle's two files)."}`;
}

window.addEventListener("unhandledrejection", (event) => showFatal(event.reason));
start().catch(showFatal);

// The app: loads the model and its bundle in a worker (WebGPU, else the CPU), then routes
// (routes.ts) between the views: the image lab, the neuron explorer (with word pages and lists
// of neurons) and the adversarial miner, each in its own <section> (view.ts). `<main
// data-status>` is "loading" until the first view has its result, then "ready"; a failure
// shows a readable message and sets it to "error".

import { byId, errorMessage } from "./dom";
import { NeuronExplorer } from "./explorer";
import { formatThreads } from "./format";
import { ensureIsolation } from "./isolation";
import { ImageLab } from "./lab";
import { ListStore, ListView, wireListLink } from "./lists";
import { BuildView, keptHref } from "./build";
import { AdversarialMiner } from "./miner";
import { ModelPanel } from "./model-panel";
import { isBackendChoice, type BackendChoice, type ReadyResponse } from "./protocol";
import { parseRoute, type RouteOf, type ViewName } from "./routes";
import { Session, type Sources } from "./session";
import { readSettings } from "./settings";
import { pickedSources, urlSources } from "./sources";
import { loadKeptThumbnails } from "./thumbnails";
import type { View } from "./view";
import { MapView } from "./map-view";
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

function describeBackend(ready: ReadyResponse, requested: BackendChoice): string {
  if (ready.backend === "webgpu") return ready.adapter === null ? "WebGPU" : `WebGPU (${ready.adapter})`;
  const threads = `${formatThreads(ready.threads)}${ready.singleThreadReason === null ? "" : `: ${ready.singleThreadReason}`}`;
  if (ready.webgpuUnavailable !== null) return `CPU, ${threads} (WebGPU unavailable: ${ready.webgpuUnavailable})`;
  return requested === "cpu" ? `CPU, ${threads} (chosen)` : `CPU, ${threads}`;
}

function readyText(ready: ReadyResponse): string {
  const where = ready.backend === "webgpu" ? "WebGPU" : "the CPU";
  if (ready.bundle) return `Ready on ${where}.`;
  const lab = ready.textSide ? "the image lab classifies with the model's text side; its concepts," : "the image lab,";
  return `Ready on ${where}. No bundle is loaded: ${lab} the neurons and the adversarial words need one (?bundle=URL, or the bundle's two files).`;
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

const panel = new ModelPanel(byId("loading-panel", HTMLElement), settings, (files) => {
  pickedSources(files)
    .then((sources) => restart(ui.backendChoice.value as BackendChoice, sources))
    .catch(showFatal);
});

const session = new Session(
  urlSources(settings),
  settings.backend,
  {
    progress: (event) => panel.showProgress(event),
    ready: (ready, reason) => onReady(ready, reason),
  },
  settings.simulateDeviceLoss,
);

const myList = new ListStore();
wireListLink(myList, byId("list-link", HTMLAnchorElement), byId("list-count", HTMLElement));

const lab = new ImageLab(byId("view-lab", HTMLElement), session, settings.concept ?? "predicted");

/** The views by name (the `data-view` of their sections and the routes' `view`). */
const views: { [V in ViewName]: View<RouteOf<V>> } = {
  lab,
  explorer: new NeuronExplorer(byId("view-explorer", HTMLElement), session, myList),
  list: new ListView(byId("view-list", HTMLElement), session, myList),
  word: new WordPageView(byId("view-word", HTMLElement), session),
  map: new MapView(byId("view-map", HTMLElement), session),
  miner: new AdversarialMiner(byId("view-miner", HTMLElement), session),
  build: new BuildView(byId("view-build", HTMLElement), session, openBuilt, settings.simulateBuildDeviceLoss),
};

/** Opens a bundle built in the page and kept: the address names it (a reload reopens it), the
 * engine reloads with it and the explorer shows it. */
async function openBuilt(kept: string): Promise<void> {
  const { sources, backend } = session.loadedFrom;
  history.replaceState(null, "", keptHref(kept));
  await restart(backend, { ...sources, bundle: { kind: "local", name: kept } });
  location.hash = "#/neuron";
}

async function onReady(ready: ReadyResponse, reason: string | null): Promise<void> {
  await loadKeptThumbnails(ready.bundle);
  ui.backend.textContent = describeBackend(ready, ui.backendChoice.value as BackendChoice);
  ui.backend.dataset["backend"] = ready.backend;
  ui.main.dataset["backend"] = ready.backend;
  panel.showReady(ready);
  for (const view of Object.values(views)) view.setBundle(ready.bundle);
  if (reason !== null) notify(reason);
}

// ---- Routes ----

/** Reveals the section of view `name` and hides the others; marks its tab. */
function showView(name: ViewName): void {
  for (const [viewName, view] of Object.entries(views)) view.section.hidden = viewName !== name;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav.tabs a[data-view]")) {
    if (link.dataset["view"] === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Shows the route's view and loads what it needs; resolves when its result is shown. */
async function route(): Promise<void> {
  const target = parseRoute(location.hash);
  showView(target.view);
  // The table pairs each view with its kind of route (TypeScript does not follow the pairing
  // through the lookup: View's show is checked as a method, bivariantly).
  const view: View = views[target.view];
  await view.show(target);
}

// ---- Engine (re)starts ----

/** A new engine (another backend or other sources); the current view is shown again. */
async function restart(backend: BackendChoice, sources?: Sources): Promise<void> {
  ui.errorPanel.hidden = true;
  setStatus("loading", `Loading on ${backend}…`);
  panel.resetDownloads();
  const ready = await session.start(backend, sources);
  if (sources) panel.showSources(sources, false);
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
  panel.showSources(urlSources(settings), settings.demo);
  ui.backendChoice.addEventListener("change", () => {
    const choice = ui.backendChoice.value;
    if (isBackendChoice(choice)) restart(choice).catch(showFatal);
  });

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
    if (ready.bundle || ready.textSide) await lab.open("samples/cat.jpg");
  } else {
    await route();
  }
  setStatus("ready", readyText(session.ready ?? ready));
}

window.addEventListener("unhandledrejection", (event) => showFatal(event.reason));
start().catch(showFatal);

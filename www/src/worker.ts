// The Web Worker (an ES module worker) that owns the WebAssembly module and the CLIP engine.
// The page talks to it only through the messages in protocol.ts, so downloads, model loading
// and inference never block the page.
//
// Requests are handled one at a time, in order: the engine's methods must not overlap (a
// wasm-bindgen object cannot be borrowed mutably while another call holds it), and a queue
// also keeps the answers in the order the page asked. This file holds the requests and the
// queue; its parts: worker-wasm.ts (the two modules), worker-gpu.ts (the WebGPU probe),
// worker-downloads.ts (downloads and the Cache API), worker-errors.ts (panics, messages,
// error kinds).

import type { Engine } from "clip-lens-wasm";
import type {
  BackendName,
  BenchmarkRequest,
  BundleInfo,
  BundleSource,
  CallRequest,
  EmbedImageRequest,
  EmbedTextRequest,
  EngineCalls,
  EngineMethod,
  LoadRequest,
  QueuedRequest,
  WeightsSource,
  WorkerRequest,
  WorkerResponse,
} from "./protocol";
import { download, downloadIfPresent, looksLikeHtml, obtain, reporter, sendProgressTo } from "./worker-downloads";
import { readKeptTextSide } from "./kept-text-sides";
import { readKeptFile } from "./my-bundles";
import { controlBuild, runBuild } from "./worker-build";
import { crashReason, describe, errorKind, LoadError } from "./worker-errors";
import { adapterBufferLimit, adapterName, autoSkipsWebgpu, webgpuProblem } from "./worker-gpu";
import { type Wasm, wasm, wasmMemoryBytes } from "./worker-wasm";

/** The parts of DedicatedWorkerGlobalScope used here (tsconfig has the DOM lib, not WebWorker). */
interface WorkerScope {
  postMessage(message: WorkerResponse, transfer: Transferable[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent<WorkerRequest>) => void): void;
  addEventListener(type: "unhandledrejection", listener: (event: PromiseRejectionEvent) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

function post(message: WorkerResponse, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}
sendProgressTo(post);

// ---- Requests ----

let engine: Engine | null = null;
/** Set by a load with `simulateDeviceLoss`: the next engine call fails as a lost device. */
let simulatedLoss = false;

/** Throws the simulated device loss once, where a load asked for one (`?simulate=<hook>`). */
function loseDeviceIfSimulated(hook: string): void {
  if (!simulatedLoss) return;
  simulatedLoss = false;
  throw new DeviceLostError(`The GPU device was lost (simulated with ?simulate=${hook}).`);
}

/** What the page shows of the engine's bundle (the engine read and checked its manifest). */
function bundleInfo(current: Engine, baseUrl: string | null, kept: string | null): BundleInfo {
  const summary = current.bundleSummary();
  return {
    modelName: summary.model_name,
    layers: summary.layers,
    neurons: summary.neurons,
    topK: summary.top_k,
    components: summary.components,
    words: summary.words,
    classes: summary.classes,
    images: summary.images,
    baseUrl,
    kept,
    hasThumbnails: summary.thumbnail_size > 0,
  };
}

/** The bundle's manifest text, tensors and directory address. */
async function obtainBundle(
  id: number,
  source: BundleSource,
): Promise<{ manifest: string; tensors: Uint8Array; baseUrl: string | null; kept?: string }> {
  if (source.kind === "files") {
    reporter(id, "bundle", source.name)(source.tensors.length, source.tensors.length, true, "local");
    return { manifest: new TextDecoder().decode(source.manifest), tensors: source.tensors, baseUrl: null };
  }
  if (source.kind === "local") {
    const [manifest, tensors] = await Promise.all([
      readKeptFile(source.name, "manifest.json"),
      readKeptFile(source.name, "lens.safetensors"),
    ]);
    reporter(id, "bundle", `local:${source.name}`)(tensors.length, tensors.length, true, "local");
    return { manifest: new TextDecoder().decode(manifest), tensors, baseUrl: null, kept: source.name };
  }
  const baseUrl = source.url.endsWith("/") ? source.url : `${source.url}/`;
  const [manifest, tensors] = await Promise.all([
    download(id, "bundle manifest", new URL("manifest.json", baseUrl).href),
    download(id, "bundle", new URL("lens.safetensors", baseUrl).href),
  ]);
  const text = new TextDecoder().decode(manifest);
  if (looksLikeHtml(manifest))
    throw new Error(`${baseUrl}manifest.json is an HTML page, not a bundle manifest: is ${baseUrl} a bundle directory?`);
  return { manifest: text, tensors, baseUrl };
}

function sourceName(source: WeightsSource): string {
  return source.kind === "bytes" ? source.name : source.url;
}

/** The weights, ready for an engine: one file, or a converted directory's image tower (its
 * text tower's address kept for later). */
type Weights =
  | { kind: "file"; bytes: Uint8Array }
  | { kind: "converted"; manifest: string; image: Uint8Array; config: string; textUrl: string; textEmbeddings: Uint8Array | null };

/** The model's text side beside converted towers (`clip-lens embed-text`), when the host has it. */
const TEXT_EMBEDDINGS_FILE = "text-embeddings.safetensors";

/** The text tower still to load for the current engine (converted weights), or null. */
let pendingTextTower: string | null = null;

async function obtainWeights(id: number, source: WeightsSource): Promise<Weights> {
  if (source.kind !== "converted") return { kind: "file", bytes: await obtain(id, "weights", source) };
  const base = source.url.replace(/manifest\.json$/, "").replace(/\/?$/, "/");
  const manifestBytes = await download(id, "weights manifest", new URL("manifest.json", base).href);
  if (looksLikeHtml(manifestBytes))
    throw new Error(`${base}manifest.json is an HTML page: is ${base} a directory written by clip-lens convert?`);
  const manifest = new TextDecoder().decode(manifestBytes);
  let files: { image?: { file?: unknown }; text?: { file?: unknown } };
  try {
    files = JSON.parse(manifest) as typeof files;
  } catch (error) {
    throw new Error(`${base}manifest.json is not JSON: ${describe(error)}`);
  }
  const imageFile = String(files.image?.file ?? "image.safetensors");
  const textFile = String(files.text?.file ?? "text.safetensors");
  const [image, config, textEmbeddings] = await Promise.all([
    download(id, "image tower", new URL(imageFile, base).href),
    download(id, "config", new URL("config.json", base).href),
    downloadIfPresent(id, "text embeddings", new URL(TEXT_EMBEDDINGS_FILE, base).href),
  ]);
  const textUrl = new URL(textFile, base).href;
  return { kind: "converted", manifest, image, config: new TextDecoder().decode(config), textUrl, textEmbeddings };
}

/** When the model's kept text side (computed by a build in this browser) was last read. */
let keptTextSideModified = 0;

/** Loads the text side this browser keeps for `current`'s weights, when one was written since it
 * was last read (a build computes and keeps it; it holds what a shipped text side held, and
 * more). A kept file that does not load is left alone: the model works without it. */
async function loadKeptTextSide(current: Engine): Promise<void> {
  try {
    const kept = await readKeptTextSide(current.weightsSha256, keptTextSideModified);
    if (kept === null) return;
    current.loadTextEmbeddings(kept.bytes);
    keptTextSideModified = kept.modified;
  } catch (error) {
    console.warn(`The text side kept in this browser for this model was not loaded: ${describe(error)}`);
  }
}

/** Runs `work`; when it fails because the converted text tower is not loaded yet (an engine
 * error of kind `needs-text-tower`), downloads and loads the tower (progress under the request
 * `id`) and runs `work` again. Engine calls check for the tower before any other work. */
async function withTextTower<T>(id: number, current: Engine, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (pendingTextTower === null || errorKind(error) !== "needs-text-tower") throw error;
    current.loadTextTower(await download(id, "text tower", pendingTextTower));
    pendingTextTower = null;
    return work();
  }
}

async function load(request: LoadRequest): Promise<void> {
  const { id, weights: weightsSource, config: configSource, bundle: bundleSource } = request;
  const autoSkip = request.backend === "auto" ? await autoSkipsWebgpu() : null;
  const backend = autoSkip === null ? request.backend : "cpu";
  const [{ module, singleThreadReason }, weights, config, bundle] = await Promise.all([
    wasm(backend),
    obtainWeights(id, weightsSource),
    configSource === null ? Promise.resolve(null) : obtain(id, "config", configSource),
    bundleSource === null ? Promise.resolve(null) : obtainBundle(id, bundleSource),
  ]);
  const configJson = config === null ? undefined : new TextDecoder().decode(config);
  const weightsBytes = weights.kind === "file" ? weights.bytes.length : weights.image.length;

  const started = performance.now();
  const bufferLimit = backend === "cpu" ? undefined : await adapterBufferLimit();
  const create = async (kind: BackendName): Promise<Engine> => {
    try {
      // The engine takes its own copy (wasm memory); the bytes stay for a CPU retry.
      if (weights.kind === "converted")
        return await module.Engine.createFromConverted(weights.manifest, weights.image, configJson ?? weights.config, kind, bufferLimit);
      return await module.Engine.create(weights.bytes, configJson, kind, bufferLimit);
    } catch (error) {
      let message = describe(error);
      if (looksLikeHtml(weights.kind === "file" ? weights.bytes : weights.image))
        message += ". The weights file looks like an HTML page, not a safetensors file.";
      const source =
        configSource === null ? sourceName(weightsSource) : `${sourceName(weightsSource)} (config ${sourceName(configSource)})`;
      const where = kind === "webgpu" ? "WebGPU" : "the CPU";
      throw new LoadError(`Could not load the model from ${source} on ${where}: ${message}`, describe(error));
    }
  };

  // "auto" is done here rather than in Rust so that the page can be told why WebGPU failed.
  let created: Engine;
  let webgpuUnavailable: string | null = autoSkip;
  if (backend === "auto") {
    try {
      created = await create("webgpu");
    } catch (gpuError) {
      if (crashReason() !== null) throw gpuError;
      // When the CPU fails too, the problem is the weights (or config), and its error says so.
      created = await create("cpu");
      webgpuUnavailable = await webgpuProblem(gpuError);
    }
  } else {
    created = await create(backend);
  }

  if (weights.kind === "converted" && weights.textEmbeddings !== null) {
    try {
      created.loadTextEmbeddings(weights.textEmbeddings);
    } catch (error) {
      created.free();
      throw new Error(`Could not use ${TEXT_EMBEDDINGS_FILE} beside the converted weights: ${describe(error)}`);
    }
  }

  keptTextSideModified = 0;
  await loadKeptTextSide(created);

  let info: BundleInfo | null = null;
  if (bundle !== null) {
    try {
      created.loadBundle(bundle.manifest, bundle.tensors);
    } catch (error) {
      created.free();
      const where = bundle.baseUrl ?? "the chosen files";
      throw new Error(`Could not use the bundle at ${where}: ${describe(error)}`);
    }
    info = bundleInfo(created, bundle.baseUrl, bundle.kept ?? null);
  }

  const backendName: BackendName = created.backend() === "webgpu" ? "webgpu" : "cpu";
  const adapter = backendName === "webgpu" ? await adapterName() : null;
  engine?.free();
  engine = created;
  pendingTextTower = weights.kind === "converted" ? weights.textUrl : null;
  simulatedLoss = request.simulateDeviceLoss === true && backendName === "webgpu";
  post({
    id,
    type: "ready",
    backend: backendName,
    adapter,
    imageSize: created.imageSize,
    visionLayers: created.visionLayers,
    webgpuUnavailable,
    threads: module.cpuThreads(),
    singleThreadReason,
    weightsBytes,
    initMs: performance.now() - started,
    bundle: info,
    textSide: created.hasTextEmbeddings,
    weightsSha256: created.weightsSha256,
  });
}

function loadedEngine(): Engine {
  if (engine === null) throw new Error("No model is loaded yet: send a load request first.");
  return engine;
}

async function embedImage(request: EmbedImageRequest): Promise<void> {
  const started = performance.now();
  const values = await loadedEngine().embedImage(request.bytes);
  post({ id: request.id, type: "embedding", values, ms: performance.now() - started }, [values.buffer]);
}

async function embedText(request: EmbedTextRequest): Promise<void> {
  const started = performance.now();
  const current = loadedEngine();
  const values = await withTextTower(request.id, current, () => current.embedText(request.text));
  post({ id: request.id, type: "embedding", values, ms: performance.now() - started }, [values.buffer]);
}

async function benchmark(request: BenchmarkRequest): Promise<void> {
  const backend = request.backend === "auto" && (await autoSkipsWebgpu()) !== null ? "cpu" : request.backend;
  const { module } = await wasm(backend);
  const parsed = JSON.parse(
    await module.benchmarkVision(request.shape, backend, request.batch, request.runs, request.analysis, request.probe),
  ) as { backend?: string };
  const json = JSON.stringify({ ...parsed, call_us: callMicros(module) });
  post({ id: request.id, type: "benchmark", json, adapter: parsed.backend !== "cpu" ? await adapterName() : null });
}

/** One call into the module, in microseconds: the mean of 2000 calls of an export that only
 * returns a number (what every call pays before its own work). */
function callMicros(module: Wasm): number {
  const calls = 2000;
  const started = performance.now();
  for (let i = 0; i < calls; i++) module.cpuThreads();
  return ((performance.now() - started) * 1000) / calls;
}

type Args<M extends EngineMethod> = EngineCalls[M]["args"];

/** Each engine method the page may call, with its arguments unpacked. */
const METHODS: { [M in EngineMethod]: (engine: Engine, args: Args<M>) => Promise<EngineCalls[M]["result"]> } = {
  analyze: (e, a) => e.analyze(a.bytes, null),
  segment: (e, a) => e.segment(a.concept, a.layers === null ? undefined : Uint32Array.from(a.layers), a.topNeurons ?? undefined),
  activationMap: (e, a) => e.activationMap(a.bytes, a.layer, a.neuron),
  neuron: async (e, a) => e.neuron(a.layer, a.neuron),
  imageHeads: (e, a) => e.imageHeads(a.layer, a.neuron),
  neuronMap: async (e, a) => e.neuronMap(a.layer),
  search: (e, a) => e.search(a.text, a.top),
  adversarial: (e, a) => e.adversarial(a.class0, a.class1, a.options),
  fooled: (e, a) => e.fooled(a.bytes, a.class0, a.class1),
  wordPage: async (e, a) => e.wordPage(a.word, a.topImages ?? undefined),
  neuronList: async (e, a) => e.neuronList(a.spec),
  ablate: (e, a) => e.ablate(a.request),
  neuronCsv: async (e, a) => e.neuronCsv(a.layer, a.neuron),
  analysisCsv: async (e) => e.analysisCsv(),
  defaults: async (e) => e.defaults(),
  buildMemory: async (e, a) => e.buildMemory(a.options),
  textSidePlan: async (e, a) => {
    await loadKeptTextSide(e);
    return e.planTextSide(a.words, a.classTemplates);
  },
};

async function call(request: CallRequest): Promise<void> {
  const started = performance.now();
  const current = loadedEngine();
  loseDeviceIfSimulated("device-lost");
  const method = METHODS[request.method] as (engine: Engine, args: unknown) => Promise<unknown>;
  const value = await withTextTower(request.id, current, () => method(current, request.args));
  // Float32Arrays (heatmaps) move to the page without a copy.
  const transfer =
    value !== null && typeof value === "object"
      ? Object.values(value)
          .filter((v): v is Float32Array => v instanceof Float32Array)
          .map((v) => v.buffer)
      : [];
  post({ id: request.id, type: "result", value, ms: performance.now() - started }, transfer);
}

/** A failure of the GPU device itself: the page retries on the CPU. */
class DeviceLostError extends Error {}

/** Whether a failure on the current engine means its GPU is gone: an engine error of kind
 * `device-lost`, or a crash on WebGPU. */
function isDeviceLoss(error: unknown): boolean {
  if (error instanceof DeviceLostError || errorKind(error) === "device-lost") return true;
  return crashReason() !== null && engine !== null && engine.backend() === "webgpu";
}

/** What the GPU allocator holds, when the engine runs on WebGPU and is not in a call (a
 * wasm-bindgen object cannot be borrowed while an async method holds it). */
function gpuBytesReserved(): number | null {
  try {
    return engine?.gpuMemory()?.bytes_reserved ?? null;
  } catch {
    return null;
  }
}

// ---- The queue ----

const cancelled = new Set<number>();

/** The request being handled, if any (a trap answers it: see below). */
let running: QueuedRequest | null = null;

async function handle(request: QueuedRequest): Promise<void> {
  if (cancelled.delete(request.id)) {
    post({ id: request.id, type: "error", message: "Cancelled.", cancelled: true });
    return;
  }
  running = request;
  try {
    const crashed = crashReason();
    if (crashed !== null) {
      throw new Error(`The WebAssembly module crashed earlier (${crashed}); reload the page to start again.`);
    }
    switch (request.type) {
      case "load":
        return await load(request);
      case "embedImage":
        return await embedImage(request);
      case "embedText":
        return await embedText(request);
      case "benchmark":
        return await benchmark(request);
      case "call":
        return await call(request);
      case "build":
        loseDeviceIfSimulated("build-device-lost");
        return await runBuild(request, loadedEngine(), post, withTextTower);
      default: {
        const unknown: never = request;
        throw new Error(`Unknown request ${JSON.stringify(unknown)}`);
      }
    }
  } catch (error) {
    fail(request, error);
  } finally {
    running = null;
  }
}

/** Answers `request` with `error`. */
function fail(request: QueuedRequest, error: unknown): void {
  const deviceLost = (request.type === "call" || request.type === "build") && isDeviceLoss(error);
  post({ id: request.id, type: "error", message: describe(error), deviceLost });
}

// A trap in WebAssembly while an async engine method runs (an allocation that failed, a panic)
// rejects a promise inside wasm-bindgen's task queue, not the method's: the method's promise
// never settles. The request that was running fails with the trap instead of waiting for ever
// (the page then shows it; the engine is not used again).
scope.addEventListener("unhandledrejection", (event: PromiseRejectionEvent) => {
  if (!(event.reason instanceof WebAssembly.RuntimeError) || running === null) return;
  fail(running, event.reason);
  running = null;
});

let queue: Promise<void> = Promise.resolve();
scope.addEventListener("message", (event) => {
  const request = event.data;
  // Cancels act at once, on requests still waiting in the queue; memory is answered at once.
  if (request.type === "cancel") {
    for (const id of request.ids) cancelled.add(id);
    return;
  }
  if (request.type === "buildControl") {
    controlBuild(request.action);
    return;
  }
  if (request.type === "memory") {
    post({ id: request.id, type: "memory", wasmBytes: wasmMemoryBytes(), gpuBytesReserved: gpuBytesReserved() });
    return;
  }
  queue = queue.then(() => handle(request));
});

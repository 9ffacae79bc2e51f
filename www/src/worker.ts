// The Web Worker (an ES module worker) that owns the WebAssembly module and the CLIP engine.
// The page talks to it only through the messages in protocol.ts, so downloads, model loading
// and inference never block the page.
//
// Requests are handled one at a time, in order: the engine's methods must not overlap (a
// wasm-bindgen object cannot be borrowed mutably while another call holds it), and a queue
// also keeps the answers in the order the page asked.

import type { Engine } from "clip-lens-wasm";
import type {
  BackendChoice,
  BackendName,
  BenchmarkRequest,
  BundleInfo,
  BundleSource,
  CallRequest,
  EmbedImageRequest,
  EmbedTextRequest,
  EngineCalls,
  EngineMethod,
  FileRole,
  FileSource,
  LoadRequest,
  QueuedRequest,
  WeightsSource,
  ProgressEvent,
  WorkerRequest,
  WorkerResponse,
} from "./protocol";

type Wasm = typeof import("clip-lens-wasm");

/** The parts of DedicatedWorkerGlobalScope used here (tsconfig has the DOM lib, not WebWorker). */
interface WorkerScope {
  postMessage(message: WorkerResponse, transfer: Transferable[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent<WorkerRequest>) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

function post(message: WorkerResponse, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}

// ---- Rust panics ----
// console_error_panic_hook reports a panic through console.error and the call then fails with
// a bare "unreachable" RuntimeError; keep the panic text so the page can show it. After a
// panic the wasm instance may be in an inconsistent state, so the engine is not used again.

let lastPanic: string | null = null;
let crashed: string | null = null;
const consoleError = console.error.bind(console);
console.error = (...args: unknown[]): void => {
  const text = args.map((arg) => String(arg)).join(" ");
  if (text.includes("panicked at")) lastPanic = text.split("\n\nStack:")[0] ?? text;
  consoleError(...args);
};

const OUT_OF_MEMORY_HINT =
  " The browser ran out of memory: WebAssembly has at most 4 GiB, and the tab shares the machine's memory. " +
  "Close other tabs, use the f16 towers made by `clip-lens convert --dtype f16`, or a smaller model.";

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const outOfMemory = /out of memory|allocation failed|could not allocate|memory allocation of \d+ bytes failed|WebAssembly.Memory/i.test(text);
  if (error instanceof WebAssembly.RuntimeError) {
    crashed = lastPanic ?? error.message;
    return `The WebAssembly module crashed: ${crashed}${outOfMemory || /alloc|memory/i.test(crashed) ? OUT_OF_MEMORY_HINT : ""}`;
  }
  return outOfMemory ? `${text}.${OUT_OF_MEMORY_HINT}` : text;
}

// ---- The WebAssembly module ----

/** An instantiated module and its memory (for `memory` requests). */
interface Instance {
  module: ThreadedWasm;
  memory: WebAssembly.Memory;
}

/** The module a request runs in; its threads are `module.cpuThreads()`. */
interface LoadedWasm extends Instance {
  /** Why it runs on one thread where the machine has more cores; null otherwise. */
  singleThreadReason: string | null;
}

/** The threaded module's extra export (wasm-bindgen-rayon): starts rayon's pool on `n` workers. */
type ThreadedWasm = Wasm & { initThreadPool?: (threads: number) => Promise<void> };

/** The memory of the module used last, for `memory` requests. */
let wasmMemory: WebAssembly.Memory | null = null;

/** Most workers the pool starts unprompted: the forward's products split into 48-column panels
 * gain little beyond this, and each worker costs its stack and start-up. */
const MAX_AUTO_THREADS = 8;

/** The CPU threads to run on: the page's `?threads=N` (passed on in this worker's URL; 1 picks
 * the single-threaded module), else one per logical core up to MAX_AUTO_THREADS. */
function wantedThreads(): number {
  const asked = new URL(self.location.href).searchParams.get("threads");
  const n = asked === null ? Number.NaN : Number(asked);
  if (Number.isInteger(n) && n >= 1) return Math.min(n, 64);
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, MAX_AUTO_THREADS));
}

/** Imports the wasm-bindgen glue at `url` and instantiates its module. */
async function instantiate(url: string, name: string): Promise<Instance> {
  let module: ThreadedWasm;
  try {
    module = (await import(url)) as ThreadedWasm;
  } catch (error) {
    throw new Error(`Could not load the WebAssembly glue (${name}/clip_lens.js): ${describe(error)}`);
  }
  try {
    return { module, memory: (await module.default()).memory };
  } catch (error) {
    throw new Error(`Could not instantiate the WebAssembly module (${name}/clip_lens_bg.wasm): ${describe(error)}`);
  }
}

/** The threaded module with its pool started, or why it cannot run here. */
async function threadedWasm(threads: number): Promise<LoadedWasm | string> {
  if (!self.crossOriginIsolated) {
    return "the page is not cross-origin isolated (neither its server nor the site's service worker sent COOP/COEP headers, or it is in an iframe of a page that is not isolated), so the browser allows no shared memory";
  }
  try {
    const { module, memory } = await instantiate("./pkg-threads/clip_lens.js", "pkg-threads");
    if (module.initThreadPool === undefined) return "pkg-threads holds a single-threaded module";
    await module.initThreadPool(threads);
    return { module, memory, singleThreadReason: null };
  } catch (error) {
    return `the threaded module failed to start (${describe(error)})`;
  }
}

/** The single-threaded module (pkg/): the only one with WebGPU. */
let singleWasm: Promise<Instance> | null = null;
/** The CPU backend's module: the threaded one where it can run, else the single-threaded one. */
let cpuWasm: Promise<LoadedWasm> | null = null;

/** The single-threaded module, for a request that runs in it because of `reason`. */
async function singleThreaded(reason: string | null): Promise<LoadedWasm> {
  singleWasm ??= instantiate("./pkg/clip_lens.js", "pkg");
  return { ...(await singleWasm), singleThreadReason: reason };
}

function cpuModule(): Promise<LoadedWasm> {
  cpuWasm ??= (async () => {
    const threads = wantedThreads();
    if (threads === 1) return singleThreaded(navigator.hardwareConcurrency > 1 ? "one thread was asked for (?threads=1)" : null);
    const threaded = await threadedWasm(threads);
    if (typeof threaded !== "string") return threaded;
    console.warn(`clip-lens: one CPU thread: ${threaded}`);
    return singleThreaded(threaded);
  })();
  return cpuWasm;
}

/** Words in an adapter's description that mark a software rasteriser. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|warp|basic render|software/i;

/** Why `auto` does not use WebGPU here, or null when it does: no adapter, or only a
 * fallback (software) one, which runs the model 10-100x slower than the CPU backend
 * (SwiftShader: 0.02-0.2 GFLOP/s). `?backend=webgpu` still uses a software adapter. */
async function autoSkipsWebgpu(): Promise<string | null> {
  const gpu = webgpu();
  if (!gpu) return "this browser has no navigator.gpu (WebGPU is disabled or unsupported here)";
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return "requesting a WebGPU adapter failed";
  }
  if (!adapter) return "the browser offers no WebGPU adapter";
  const info = adapter.info ?? {};
  const description = [info.vendor, info.architecture, info.device, info.description].filter((part) => !!part).join(" ");
  if (adapter.isFallbackAdapter || info.isFallbackAdapter || SOFTWARE_ADAPTER.test(description)) {
    return `the only WebGPU adapter is a software one${description ? ` (${description})` : ""}, slower than the CPU; ?backend=webgpu uses it anyway`;
  }
  return null;
}

/** Imports and instantiates the WebAssembly module for `backend`, once per module. WebGPU
 * (asked, or "auto" when [`autoSkipsWebgpu`] finds a hardware adapter) needs the single-threaded module: wgpu's WebGPU backend
 * cannot be built with shared memory. The CPU backend runs in the threaded module (rayon's
 * pool on Web Workers) where the page is cross-origin isolated and more than one thread is
 * wanted. Both are copies of the wasm-pack output next to worker.js (pkg/, pkg-threads/). */
async function wasm(backend: BackendChoice): Promise<LoadedWasm> {
  const gpuFirst = backend !== "cpu";
  const loaded = await (gpuFirst ? singleThreaded("WebGPU was tried first, and it runs in the single-threaded module") : cpuModule());
  wasmMemory = loaded.memory;
  return loaded;
}

// ---- Downloads (through the Cache API) ----

const PROGRESS_INTERVAL_MS = 50;
const CACHE_NAME = "clip-lens-files-v1";

type Report = (loaded: number, total: number | null, done: boolean, source: ProgressEvent["source"]) => void;

function reporter(id: number, file: FileRole, url: string): Report {
  const start = performance.now();
  return (loaded, total, done, source) =>
    post({ id, type: "progress", file, url, loaded, total, elapsedMs: performance.now() - start, done, source });
}

/** The Cache API's store, or null where the browser has none (an insecure origin) or refuses. */
async function fileCache(): Promise<Cache | null> {
  try {
    return "caches" in globalThis ? await caches.open(CACHE_NAME) : null;
  } catch {
    return null;
  }
}

/** Whether a cached response is still the server's file: the server's ETag (else
 * Last-Modified and Content-Length) is unchanged. Offline (the check fails), the cached copy
 * is used. */
async function cachedIsCurrent(url: string, cached: Response): Promise<boolean> {
  let head: Response;
  try {
    head = await fetch(url, { method: "HEAD", cache: "no-store" });
  } catch {
    return true;
  }
  if (!head.ok) return false;
  const same = (name: string): boolean => head.headers.get(name) === cached.headers.get(name);
  const etag = head.headers.get("ETag");
  if (etag !== null) return same("ETag");
  return head.headers.get("Last-Modified") !== null && same("Last-Modified") && same("Content-Length");
}

/** The bytes of `url`: from the Cache API when an earlier visit stored the current version,
 * else downloaded with progress against Content-Length (and stored). Readable errors. */
async function download(id: number, file: FileRole, url: string): Promise<Uint8Array> {
  const report = reporter(id, file, url);
  const cache = await fileCache();
  const cached = await cache?.match(url).catch(() => undefined);
  if (cached && (await cachedIsCurrent(url, cached))) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    report(bytes.length, bytes.length, true, "cache");
    return bytes;
  }
  const { bytes, headers } = await fetchWithProgress(file, url, report);
  if (cache) {
    // A full copy with the server's validators; a failure (quota) only costs the next visit.
    const stored = new Headers();
    for (const name of ["ETag", "Last-Modified", "Content-Type"]) {
      const value = headers.get(name);
      if (value !== null) stored.set(name, value);
    }
    stored.set("Content-Length", String(bytes.length));
    await cache.put(url, new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]), { headers: stored })).catch((error: unknown) => console.warn(`Not cached: ${url}: ${describe(error)}`));
  }
  return bytes;
}

async function fetchWithProgress(file: FileRole, url: string, report: Report): Promise<{ bytes: Uint8Array; headers: Headers }> {
  let response: Response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (error) {
    throw new Error(
      `Could not download the ${file} from ${url}: the server could not be reached (${describe(error)}). ` +
        "Check the address and your connection; files on another server must come over https, with CORS headers that allow this page.",
    );
  }
  if (!response.ok) {
    const status = `${response.status} ${response.statusText}`.trim();
    throw new Error(`Could not download the ${file} from ${url}: the server answered HTTP ${status}.`);
  }

  // Content-Length counts encoded bytes; with a compressed body it says nothing about the bytes read.
  const encoding = response.headers.get("Content-Encoding");
  const length = Number(response.headers.get("Content-Length") ?? Number.NaN);
  const total = Number.isSafeInteger(length) && length >= 0 && (!encoding || encoding === "identity") ? length : null;

  report(0, total, false, "network");
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.length, total, true, "network");
    return { bytes, headers: response.headers };
  }

  const reader = response.body.getReader();
  let buffer = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  let lastReport = performance.now();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buffer.length) {
        const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length));
        grown.set(buffer.subarray(0, loaded));
        buffer = grown;
      }
      buffer.set(value, loaded);
      loaded += value.length;
      const now = performance.now();
      if (now - lastReport >= PROGRESS_INTERVAL_MS) {
        lastReport = now;
        report(loaded, total, false, "network");
      }
    }
  } catch (error) {
    throw new Error(`The download of the ${file} from ${url} broke off after ${loaded} bytes: ${describe(error)}`);
  }
  if (total !== null && loaded !== total) {
    throw new Error(`The download of the ${file} from ${url} is incomplete: ${loaded} of ${total} bytes.`);
  }
  report(loaded, total, true, "network");
  return { bytes: buffer.subarray(0, loaded), headers: response.headers };
}

/** The bytes of a file source; picked files report one "local" progress event. */
async function obtain(id: number, file: FileRole, source: FileSource): Promise<Uint8Array> {
  if (source.kind === "url") return download(id, file, source.url);
  reporter(id, file, source.name)(source.bytes.length, source.bytes.length, true, "local");
  return source.bytes;
}

function looksLikeHtml(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).trimStart().toLowerCase();
  return /^<(!doctype|html|head|body|\?xml)/.test(head);
}

/** The parts of the WebGPU API used here (tsconfig has no WebGPU types). */
interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
  readonly limits?: { maxStorageBufferBindingSize?: number; maxBufferSize?: number };
}
interface GpuLike {
  requestAdapter(): Promise<GpuAdapterLike | null>;
}

function webgpu(): GpuLike | undefined {
  return (navigator as { gpu?: GpuLike }).gpu;
}

/** Why WebGPU is not used, for the page; `error` is what the WebGPU attempt threw. */
async function webgpuProblem(error: unknown): Promise<string> {
  const gpu = webgpu();
  if (!gpu) return "this browser has no navigator.gpu (WebGPU is disabled or unsupported here)";
  try {
    if ((await gpu.requestAdapter()) === null) return "the browser offers no WebGPU adapter";
  } catch {
    return "requesting a WebGPU adapter failed";
  }
  return error instanceof LoadError ? error.detail : describe(error);
}

/** The browser's default WebGPU adapter in words ("nvidia ampere", "google swiftshader,
 * software"), or null when there is none or the browser tells nothing about it. */
async function adapterName(): Promise<string | null> {
  try {
    const adapter = await webgpu()?.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const parts = [...new Set([info.vendor, info.architecture, info.device, info.description].filter((part) => !!part))];
    const software = adapter.isFallbackAdapter || info.isFallbackAdapter ? "software" : null;
    const name = parts.join(" ");
    return [name, software].filter((part) => !!part).join(", ") || null;
  } catch {
    return null;
  }
}

/** The adapter's largest buffer in bytes (the smaller of its storage-binding and buffer-size
 * limits), or undefined when unknown: the engine refuses weights and picks lens factors that
 * fit. */
async function adapterBufferLimit(): Promise<number | undefined> {
  try {
    const limits = (await webgpu()?.requestAdapter())?.limits;
    const values = [limits?.maxStorageBufferBindingSize, limits?.maxBufferSize].filter((v): v is number => typeof v === "number" && v > 0);
    return values.length ? Math.min(...values) : undefined;
  } catch {
    return undefined;
  }
}

// ---- Requests ----

/** A failure to build the engine; `detail` is the engine's own message. */
class LoadError extends Error {
  constructor(
    message: string,
    readonly detail: string,
  ) {
    super(message);
  }
}

let engine: Engine | null = null;
/** Set by a load with `simulateDeviceLoss`: the next engine call fails as a lost device. */
let simulatedLoss = false;

/** The bundle's manifest fields the worker reads (manifest.json is validated in Rust). */
interface ManifestFields {
  model_name?: unknown;
  layers?: unknown;
  neurons?: unknown;
  top_k?: unknown;
  components?: unknown;
  words?: unknown;
  classes?: unknown;
  images?: unknown;
  thumbnail_size?: unknown;
}

function bundleInfo(manifestJson: string, baseUrl: string | null): BundleInfo {
  let manifest: ManifestFields;
  try {
    manifest = JSON.parse(manifestJson) as ManifestFields;
  } catch (error) {
    throw new Error(`The bundle's manifest.json is not JSON: ${describe(error)}`);
  }
  const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
  return {
    modelName: String(manifest.model_name ?? "?"),
    layers: list(manifest.layers).map(Number),
    neurons: Number(manifest.neurons ?? 0),
    topK: Number(manifest.top_k ?? 0),
    components: Number(manifest.components ?? 0),
    words: list(manifest.words).length,
    classes: list(manifest.classes).map(String),
    images: list(manifest.images).length,
    baseUrl,
    hasThumbnails: Number(manifest.thumbnail_size ?? 0) > 0,
  };
}

/** The bundle's manifest text, tensors and directory address. */
async function obtainBundle(id: number, source: BundleSource): Promise<{ manifest: string; tensors: Uint8Array; baseUrl: string | null }> {
  if (source.kind === "files") {
    reporter(id, "bundle", source.name)(source.tensors.length, source.tensors.length, true, "local");
    return { manifest: new TextDecoder().decode(source.manifest), tensors: source.tensors, baseUrl: null };
  }
  const baseUrl = source.url.endsWith("/") ? source.url : `${source.url}/`;
  const [manifest, tensors] = await Promise.all([
    download(id, "bundle manifest", new URL("manifest.json", baseUrl).href),
    download(id, "bundle", new URL("lens.safetensors", baseUrl).href),
  ]);
  const text = new TextDecoder().decode(manifest);
  if (looksLikeHtml(manifest)) throw new Error(`${baseUrl}manifest.json is an HTML page, not a bundle manifest: is ${baseUrl} a bundle directory?`);
  return { manifest: text, tensors, baseUrl };
}

function sourceName(source: WeightsSource): string {
  return source.kind === "bytes" ? source.name : source.url;
}

/** The weights, ready for an engine: one file, or a converted directory's image tower (its
 * text tower's address kept for later). */
type Weights =
  | { kind: "file"; bytes: Uint8Array }
  | { kind: "converted"; manifest: string; image: Uint8Array; config: string; textUrl: string };

/** The text tower still to load for the current engine (converted weights), or null. */
let pendingTextTower: string | null = null;

async function obtainWeights(id: number, source: WeightsSource): Promise<Weights> {
  if (source.kind !== "converted") return { kind: "file", bytes: await obtain(id, "weights", source) };
  const base = source.url.replace(/manifest\.json$/, "").replace(/\/?$/, "/");
  const manifestBytes = await download(id, "weights manifest", new URL("manifest.json", base).href);
  if (looksLikeHtml(manifestBytes)) throw new Error(`${base}manifest.json is an HTML page: is ${base} a directory written by clip-lens convert?`);
  const manifest = new TextDecoder().decode(manifestBytes);
  let files: { image?: { file?: unknown }; text?: { file?: unknown } };
  try {
    files = JSON.parse(manifest) as typeof files;
  } catch (error) {
    throw new Error(`${base}manifest.json is not JSON: ${describe(error)}`);
  }
  const imageFile = String(files.image?.file ?? "image.safetensors");
  const textFile = String(files.text?.file ?? "text.safetensors");
  const [image, config] = await Promise.all([download(id, "image tower", new URL(imageFile, base).href), download(id, "config", new URL("config.json", base).href)]);
  return { kind: "converted", manifest, image, config: new TextDecoder().decode(config), textUrl: new URL(textFile, base).href };
}

/** Runs `work`; when it fails because the converted text tower is not loaded yet (the engine's
 * error names `loadTextTower`), downloads and loads the tower (progress under the request
 * `id`) and runs `work` again. Engine calls check for the tower before any other work. */
async function withTextTower<T>(id: number, current: Engine, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (pendingTextTower === null || !/loadTextTower/.test(describe(error))) throw error;
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
      if (weights.kind === "converted") return await module.Engine.createFromConverted(weights.manifest, weights.image, configJson ?? weights.config, kind, bufferLimit);
      return await module.Engine.create(weights.bytes, configJson, kind, bufferLimit);
    } catch (error) {
      let message = describe(error);
      if (looksLikeHtml(weights.kind === "file" ? weights.bytes : weights.image)) message += ". The weights file looks like an HTML page, not a safetensors file.";
      const source = configSource === null ? sourceName(weightsSource) : `${sourceName(weightsSource)} (config ${sourceName(configSource)})`;
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
      if (crashed !== null) throw gpuError;
      // When the CPU fails too, the problem is the weights (or config), and its error says so.
      created = await create("cpu");
      webgpuUnavailable = await webgpuProblem(gpuError);
    }
  } else {
    created = await create(backend);
  }

  let info: BundleInfo | null = null;
  if (bundle !== null) {
    info = bundleInfo(bundle.manifest, bundle.baseUrl);
    try {
      created.loadBundle(bundle.manifest, bundle.tensors);
    } catch (error) {
      created.free();
      const where = bundle.baseUrl ?? "the chosen files";
      throw new Error(`Could not use the bundle at ${where}: ${describe(error)}`);
    }
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
    webgpuUnavailable,
    threads: module.cpuThreads(),
    singleThreadReason,
    weightsBytes,
    initMs: performance.now() - started,
    bundle: info,
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
  const parsed = JSON.parse(await module.benchmarkVision(request.shape, backend, request.batch, request.runs, request.analysis, request.probe)) as { backend?: string };
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
  search: (e, a) => e.search(a.text, a.top),
  adversarial: (e, a) => e.adversarial(a.class0, a.class1, a.options),
  fooled: (e, a) => e.fooled(a.bytes, a.class0, a.class1),
};

async function call(request: CallRequest): Promise<void> {
  const started = performance.now();
  const current = loadedEngine();
  if (simulatedLoss) {
    simulatedLoss = false;
    throw new DeviceLostError("The GPU device was lost (simulated with ?simulate=device-lost).");
  }
  const method = METHODS[request.method] as (engine: Engine, args: unknown) => Promise<unknown>;
  const value = await withTextTower(request.id, current, () => method(current, request.args));
  // Float32Arrays (heatmaps) move to the page without a copy.
  const transfer = value !== null && typeof value === "object" ? Object.values(value).filter((v): v is Float32Array => v instanceof Float32Array).map((v) => v.buffer) : [];
  post({ id: request.id, type: "result", value, ms: performance.now() - started }, transfer);
}

/** A failure of the GPU device itself: the page retries on the CPU. */
class DeviceLostError extends Error {}

/** Whether a failure on the current engine means its GPU is gone: a crash on WebGPU, or an
 * error that says the device was lost. */
function isDeviceLoss(error: unknown): boolean {
  if (error instanceof DeviceLostError) return true;
  if (engine === null || engine.backend() !== "webgpu") return false;
  return crashed !== null || /device (is |was |has been )?lost|lost device|DeviceLost/i.test(describe(error));
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

async function handle(request: QueuedRequest): Promise<void> {
  if (cancelled.delete(request.id)) {
    post({ id: request.id, type: "error", message: "Cancelled.", cancelled: true });
    return;
  }
  try {
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
      default: {
        const unknown: never = request;
        throw new Error(`Unknown request ${JSON.stringify(unknown)}`);
      }
    }
  } catch (error) {
    const deviceLost = request.type === "call" && isDeviceLoss(error);
    post({ id: request.id, type: "error", message: describe(error), deviceLost });
  }
}

let queue: Promise<void> = Promise.resolve();
scope.addEventListener("message", (event) => {
  const request = event.data;
  // Cancels act at once, on requests still waiting in the queue; memory is answered at once.
  if (request.type === "cancel") {
    for (const id of request.ids) cancelled.add(id);
    return;
  }
  if (request.type === "memory") {
    post({ id: request.id, type: "memory", wasmBytes: wasmMemory?.buffer.byteLength ?? null, gpuBytesReserved: gpuBytesReserved() });
    return;
  }
  queue = queue.then(() => handle(request));
});

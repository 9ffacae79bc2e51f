// The Web Worker (an ES module worker) that owns the WebAssembly module and the CLIP engine.
// The page talks to it only through the messages in protocol.ts, so downloads, model loading
// and inference never block the page.
//
// Requests are handled one at a time, in order: the engine's methods must not overlap (a
// wasm-bindgen object cannot be borrowed mutably while another call holds it), and a queue
// also keeps the answers in the order the page asked.

import type { Engine } from "clip-lens-wasm";
import type {
  BackendName,
  BenchmarkRequest,
  EmbedImageRequest,
  EmbedTextRequest,
  LoadRequest,
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

function describe(error: unknown): string {
  if (error instanceof WebAssembly.RuntimeError) {
    crashed = lastPanic ?? error.message;
    return `The WebAssembly module crashed: ${crashed}`;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

// ---- The WebAssembly module ----

let wasmPromise: Promise<Wasm> | null = null;

/** Imports and instantiates the wasm-bindgen glue once (build.mjs maps it to ./pkg/clip_lens.js). */
function wasm(): Promise<Wasm> {
  wasmPromise ??= (async () => {
    let module: Wasm;
    try {
      module = await import("clip-lens-wasm");
    } catch (error) {
      throw new Error(`Could not load the WebAssembly glue (pkg/clip_lens.js): ${describe(error)}`);
    }
    try {
      await module.default();
    } catch (error) {
      throw new Error(`Could not instantiate the WebAssembly module (pkg/clip_lens_bg.wasm): ${describe(error)}`);
    }
    return module;
  })();
  return wasmPromise;
}

// ---- Downloads ----

const PROGRESS_INTERVAL_MS = 50;

/** Fetches `url`, reporting progress against Content-Length; throws readable errors. */
async function download(id: number, file: ProgressEvent["file"], url: string): Promise<Uint8Array> {
  const start = performance.now();
  let response: Response;
  try {
    response = await fetch(url);
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

  const report = (loaded: number, done: boolean): void =>
    post({ id, type: "progress", file, url, loaded, total, elapsedMs: performance.now() - start, done });

  report(0, false);
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.length, true);
    return bytes;
  }

  const reader = response.body.getReader();
  let buffer = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  let lastReport = start;
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
        report(loaded, false);
      }
    }
  } catch (error) {
    throw new Error(`The download of the ${file} from ${url} broke off after ${loaded} bytes: ${describe(error)}`);
  }
  if (total !== null && loaded !== total) {
    throw new Error(`The download of the ${file} from ${url} is incomplete: ${loaded} of ${total} bytes.`);
  }
  report(loaded, true);
  return buffer.subarray(0, loaded);
}

function looksLikeHtml(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).trimStart().toLowerCase();
  return /^<(!doctype|html|head|body|\?xml)/.test(head);
}

/** The parts of the WebGPU API used here (tsconfig has no WebGPU types). */
interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
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

async function load(request: LoadRequest): Promise<void> {
  const { id, weightsUrl, configUrl, backend } = request;
  const [module, weights, config] = await Promise.all([
    wasm(),
    download(id, "weights", weightsUrl),
    configUrl === null ? Promise.resolve(null) : download(id, "config", configUrl),
  ]);
  const configJson = config === null ? undefined : new TextDecoder().decode(config);

  const started = performance.now();
  const create = async (kind: BackendName): Promise<Engine> => {
    try {
      return await module.Engine.create(weights, configJson, kind);
    } catch (error) {
      let message = describe(error);
      if (looksLikeHtml(weights)) message += ". The weights file looks like an HTML page, not a safetensors file.";
      const source = configUrl === null ? weightsUrl : `${weightsUrl} (config ${configUrl})`;
      const where = kind === "webgpu" ? "WebGPU" : "the CPU";
      throw new LoadError(`Could not load the model from ${source} on ${where}: ${message}`, describe(error));
    }
  };

  // "auto" is done here rather than in Rust so that the page can be told why WebGPU failed.
  let created: Engine;
  let webgpuUnavailable: string | null = null;
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

  const backendName: BackendName = created.backend() === "webgpu" ? "webgpu" : "cpu";
  const adapter = backendName === "webgpu" ? await adapterName() : null;
  engine?.free();
  engine = created;
  post({
    id,
    type: "ready",
    backend: backendName,
    adapter,
    imageSize: created.imageSize,
    webgpuUnavailable,
    weightsBytes: weights.length,
    initMs: performance.now() - started,
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
  const values = await loadedEngine().embedText(request.text);
  post({ id: request.id, type: "embedding", values, ms: performance.now() - started }, [values.buffer]);
}

async function benchmark(request: BenchmarkRequest): Promise<void> {
  const module = await wasm();
  const json = await module.benchmarkVision(request.shape, request.backend, request.batch, request.runs);
  const gpu = (JSON.parse(json) as { backend?: string }).backend !== "cpu";
  post({ id: request.id, type: "benchmark", json, adapter: gpu ? await adapterName() : null });
}

async function handle(request: WorkerRequest): Promise<void> {
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
      default: {
        const unknown: never = request;
        throw new Error(`Unknown request ${JSON.stringify(unknown)}`);
      }
    }
  } catch (error) {
    post({ id: request.id, type: "error", message: describe(error) });
  }
}

let queue: Promise<void> = Promise.resolve();
scope.addEventListener("message", (event) => {
  const request = event.data;
  queue = queue.then(() => handle(request));
});

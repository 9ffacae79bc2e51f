// The two WebAssembly modules the worker runs the engine in: the single-threaded one (pkg/,
// WebGPU and the CPU) and the threaded one (pkg-threads/, the CPU on rayon's pool of Web
// Workers where the page is cross-origin isolated), each instantiated once.

import type { BackendChoice } from "./protocol";
import { describe } from "./worker-errors";

/** The wasm-bindgen glue's exports. */
export type Wasm = typeof import("clip-lens-wasm");

/** An instantiated module and its memory (for `memory` requests). */
interface Instance {
  module: ThreadedWasm;
  memory: WebAssembly.Memory;
}

/** The module a request runs in; its threads are `module.cpuThreads()`. */
export interface LoadedWasm extends Instance {
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

/** Imports and instantiates the WebAssembly module for `backend`, once per module. WebGPU
 * (asked, or "auto" when [`autoSkipsWebgpu`] finds a hardware adapter) needs the single-threaded module: wgpu's WebGPU backend
 * cannot be built with shared memory. The CPU backend runs in the threaded module (rayon's
 * pool on Web Workers) where the page is cross-origin isolated and more than one thread is
 * wanted. Both are copies of the wasm-pack output next to worker.js (pkg/, pkg-threads/). */
export async function wasm(backend: BackendChoice): Promise<LoadedWasm> {
  const gpuFirst = backend !== "cpu";
  const loaded = await (gpuFirst ? singleThreaded("WebGPU was tried first, and it runs in the single-threaded module") : cpuModule());
  wasmMemory = loaded.memory;
  return loaded;
}

/** The size of the memory of the module used last, for `memory` requests; null before one. */
export function wasmMemoryBytes(): number | null {
  return wasmMemory?.buffer.byteLength ?? null;
}

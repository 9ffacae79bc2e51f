// The API of the wasm-bindgen glue (pkg/clip_lens.js, built from src/web.rs), as the worker
// uses it. tsconfig.json maps the module name "clip-lens-wasm" to ../pkg/clip_lens.d.ts when
// wasm-pack has built it, and to this file otherwise, so the front end type-checks without
// a Rust build. At bundle time build.mjs rewrites the import to "./pkg/clip_lens.js".

export class Engine {
  private constructor();
  free(): void;
  /** Loads the image tower; rejects with an Error that names the problem. */
  static create(weights: Uint8Array, config_json: string | null | undefined, backend: string): Promise<Engine>;
  /** "webgpu" or "cpu". */
  backend(): string;
  readonly imageSize: number;
  embedImage(bytes: Uint8Array): Promise<Float32Array>;
  embedText(text: string): Promise<Float32Array>;
}

/** JSON {backend, shape, batch, runs, load_ms, first_ms, mean_ms_per_image}. */
export function benchmarkVision(shape: string, backend: string, batch: number, runs: number): Promise<string>;

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export default function init(
  module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<unknown>;

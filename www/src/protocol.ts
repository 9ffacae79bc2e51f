// The messages between the page (main.ts, bench.ts, through client.ts) and the Web Worker
// (worker.ts). Every request carries an `id`; every response to it echoes that id. A request is
// answered by zero or more `progress` events and then exactly one final response: the one
// named in `FinalResponse` for its type, or `error`.

/** The backend a page asks for. "auto" tries WebGPU and falls back to the CPU. */
export type BackendChoice = "auto" | "webgpu" | "cpu";

/** The backend an engine actually runs on. */
export type BackendName = "webgpu" | "cpu";

/** The model shapes `benchmarkVision` knows. */
export type BenchShape = "ViT-B/32" | "ViT-B/16" | "ViT-L/14";

export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", "webgpu", "cpu"];
export const BENCH_SHAPES: readonly BenchShape[] = ["ViT-B/32", "ViT-B/16", "ViT-L/14"];

export function isBackendChoice(value: string): value is BackendChoice {
  return (BACKEND_CHOICES as readonly string[]).includes(value);
}

export function isBenchShape(value: string): value is BenchShape {
  return (BENCH_SHAPES as readonly string[]).includes(value);
}

// ---- Requests (page -> worker) ----

/** Download the weights (and optionally a Hugging Face config.json) and build an engine. */
export interface LoadRequest {
  id: number;
  type: "load";
  /** Absolute URL of a safetensors file (OpenAI or Hugging Face layout). */
  weightsUrl: string;
  /** Absolute URL of a config.json, or null to infer the shapes from the weights. */
  configUrl: string | null;
  backend: BackendChoice;
}

/** The embedding of an encoded image (PNG, JPEG, WebP, GIF). Needs a loaded engine. */
export interface EmbedImageRequest {
  id: number;
  type: "embedImage";
  bytes: Uint8Array;
}

/** The embedding of a text. Needs a loaded engine; loads the text tower on first use. */
export interface EmbedTextRequest {
  id: number;
  type: "embedText";
  text: string;
}

/** Times the image tower of a random-weight model; needs no loaded engine. */
export interface BenchmarkRequest {
  id: number;
  type: "benchmark";
  shape: BenchShape;
  backend: BackendChoice;
  batch: number;
  runs: number;
}

export type WorkerRequest = LoadRequest | EmbedImageRequest | EmbedTextRequest | BenchmarkRequest;
export type RequestType = WorkerRequest["type"];

// ---- Responses (worker -> page) ----

/** Download progress of a `load` request (several per file). */
export interface ProgressEvent {
  id: number;
  type: "progress";
  /** Which file: the weights or the config. */
  file: "weights" | "config";
  url: string;
  /** Bytes received so far. */
  loaded: number;
  /** Content-Length, or null when the server did not send one (or compressed the body). */
  total: number | null;
  /** Milliseconds since this file's download started. */
  elapsedMs: number;
  done: boolean;
}

export interface ReadyResponse {
  id: number;
  type: "ready";
  backend: BackendName;
  /** The WebGPU adapter in words when the backend is WebGPU and the browser describes it. */
  adapter: string | null;
  imageSize: number;
  /** When the engine runs on the CPU although WebGPU was allowed or asked: why. */
  webgpuUnavailable: string | null;
  weightsBytes: number;
  /** Milliseconds spent building the engine after the download. */
  initMs: number;
}

export interface EmbeddingResponse {
  id: number;
  type: "embedding";
  values: Float32Array;
  /** Milliseconds the worker spent on this request. */
  ms: number;
}

export interface BenchmarkResponse {
  id: number;
  type: "benchmark";
  /** The JSON string `benchmarkVision` returned. */
  json: string;
  /** The WebGPU adapter in words when the benchmark ran on WebGPU, as in ReadyResponse. */
  adapter: string | null;
}

export interface ErrorResponse {
  id: number;
  type: "error";
  message: string;
}

export type FinalResponse = ReadyResponse | EmbeddingResponse | BenchmarkResponse;
export type WorkerResponse = ProgressEvent | FinalResponse | ErrorResponse;

/** The final response each request type resolves to. */
export interface ResponseFor {
  load: ReadyResponse;
  embedImage: EmbeddingResponse;
  embedText: EmbeddingResponse;
  benchmark: BenchmarkResponse;
}

/** The parsed result of `benchmarkVision`. */
export interface BenchmarkResult {
  backend: string;
  shape: string;
  batch: number;
  runs: number;
  load_ms: number;
  first_ms: number;
  mean_ms_per_image: number;
}

// The messages between the page (main.ts, bench.ts, through client.ts) and the Web Worker
// (worker.ts). Every request carries an `id`; every response to it echoes that id. A request is
// answered by zero or more `progress` events and then exactly one final response: the one
// named in `FinalResponse` for its type, or `error`.

import type {
  AblationRequest,
  AblationResult,
  ActivationMap,
  AdversarialOptions,
  AdversarialResult,
  Analysis,
  BuildMemory,
  BuildOptions,
  BuildProgress,
  BuildWords,
  Defaults,
  FooledResult,
  HeadGrid,
  NeuronCard,
  NeuronList,
  NeuronMap,
  TextSidePlan,
  SearchResult,
  Segmentation,
  WordPage,
} from "clip-lens-wasm";

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

/** Where a file comes from: an address, or bytes the user picked or dropped. */
export type FileSource = { kind: "url"; url: string } | { kind: "bytes"; name: string; bytes: Uint8Array };

/** The weights: one safetensors file, or a directory written by `clip-lens convert`
 * (manifest.json, config.json, image.safetensors, text.safetensors): its image tower loads
 * first and its text tower only when text is first needed. */
export type WeightsSource = FileSource | { kind: "converted"; url: string };

/** A bundle (docs/bundle-format.md): a directory address, its two files picked by the user, or
 * one kept in this browser ("My bundles", read by the worker). */
export type BundleSource =
  | { kind: "url"; url: string }
  | { kind: "files"; manifest: Uint8Array; tensors: Uint8Array; name: string }
  | { kind: "local"; name: string };

/** Download (or take) the weights, config and bundle, and build an engine with the bundle. */
export interface LoadRequest {
  id: number;
  type: "load";
  /** A safetensors file (OpenAI or Hugging Face layout), or converted towers. */
  weights: WeightsSource;
  /** A Hugging Face config.json, or null to infer the shapes from the weights. */
  config: FileSource | null;
  /** The bundle made by `clip-lens precompute` for these weights; null: the model alone. */
  bundle: BundleSource | null;
  backend: BackendChoice;
  /** Test hook (`?simulate=device-lost`): the first engine call after this load fails as if
   * the GPU device had been lost. */
  simulateDeviceLoss?: boolean;
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
  /** Also time the applications (one image's analysis and segmentation with a synthetic
   * bundle of the paper's sizes). */
  analysis: boolean;
  /** Also run the matrix-product probe (the forward's products at batch 1 and 8, GFLOP/s). */
  probe: boolean;
}

/** The engine's methods the page calls, with their arguments and results (types from
 * src/web/types.rs, through the wasm-bindgen glue's .d.ts). */
export interface EngineCalls {
  analyze: { args: { bytes: Uint8Array }; result: Analysis };
  segment: { args: { concept: string; layers: number[] | null; topNeurons: number | null }; result: Segmentation };
  activationMap: { args: { bytes: Uint8Array; layer: number; neuron: number }; result: ActivationMap };
  neuron: { args: { layer: number; neuron: number }; result: NeuronCard };
  /** A neuron's later heads on the last analysed image (each head's part of its effect along
   * r_n), without a new forward. */
  imageHeads: { args: { layer: number; neuron: number }; result: HeadGrid };
  /** A layer's map of neurons (`#/map/<layer>`): each neuron's place and first words. */
  neuronMap: { args: { layer: number }; result: NeuronMap };
  search: { args: { text: string; top: number }; result: SearchResult };
  adversarial: { args: { class0: string; class1: string; options: AdversarialOptions | null }; result: AdversarialResult };
  fooled: { args: { bytes: Uint8Array; class0: string; class1: string }; result: FooledResult };
  wordPage: { args: { word: string; topImages: number | null }; result: WordPage };
  neuronList: { args: { spec: string }; result: NeuronList };
  /** On the last analysed image, without a new forward. */
  ablate: { args: { request: AblationRequest }; result: AblationResult };
  neuronCsv: { args: { layer: number; neuron: number }; result: string };
  /** The last analysis and every ablation run on it since, as CSV. */
  analysisCsv: { args: Record<string, never>; result: string };
  /** Every option's default, as the engine applies it to an option left out. */
  defaults: { args: Record<string, never>; result: Defaults };
  /** What a build's text side would embed for a word pool (the model's kept text side read
   * again first, when a build has written it since). */
  textSidePlan: { args: TextSideRequest; result: TextSidePlan };
  /** The peak memory a build of `options` holds beside the model. */
  buildMemory: { args: { options: BuildOptions }; result: BuildMemory };
}
export type EngineMethod = keyof EngineCalls;

/** One engine method call (answered by a `result`). */
export interface CallRequest<M extends EngineMethod = EngineMethod> {
  id: number;
  type: "call";
  method: M;
  args: EngineCalls[M]["args"];
}

/** Drop the queued (not yet started) requests with these ids; answered at once by nothing:
 * each dropped request is answered by an `error` whose `cancelled` is true. */
export interface CancelRequest {
  id: number;
  type: "cancel";
  ids: number[];
}

/** How much memory the engine holds. Answered on arrival, ahead of queued requests (while the
 * module computes, as soon as it yields). */
export interface MemoryRequest {
  id: number;
  type: "memory";
}

/** An image of a build: a picked file, or an address on the site (the samples). */
export interface BuildSourceImage {
  name: string;
  size: number;
  file: Blob | null;
  url: string | null;
}

/** Build a bundle from images with the loaded model into "My bundles" under `name` (answered by
 * `buildProgress` events, then `built`). The worker reads each image when the build needs it; a
 * whole bundle of that name is replaced, a stopped build of it resumes from its checkpoint. */
export interface BuildRequest {
  id: number;
  type: "build";
  name: string;
  images: BuildSourceImage[];
  options: BuildOptions;
  /** The word pool whose text side the build completes first (kept per model), or null: the
   * words of the model's text side as they are. */
  textSide: TextSideRequest | null;
}

/** A word pool and the templates per ImageNet class for the model's text side. */
export interface TextSideRequest {
  words: BuildWords[];
  classTemplates: number;
}

/** Pause, resume or stop the running build (answered at once by nothing: the build's own
 * request ends with `built`, or with an error whose `cancelled` is true). */
export interface BuildControlRequest {
  id: number;
  type: "buildControl";
  action: "pause" | "resume" | "stop";
}

export type WorkerRequest =
  | LoadRequest
  | EmbedImageRequest
  | EmbedTextRequest
  | BenchmarkRequest
  | CallRequest
  | BuildRequest
  | CancelRequest
  | MemoryRequest
  | BuildControlRequest;
/** The requests the worker handles one at a time, in order (cancel, memory and build control
 * are answered on arrival). */
export type QueuedRequest = Exclude<WorkerRequest, CancelRequest | MemoryRequest | BuildControlRequest>;
export type RequestType = Exclude<WorkerRequest["type"], "cancel" | "buildControl">;

// ---- Responses (worker -> page) ----

/** Which file a progress event is about. */
export type FileRole =
  "weights" | "config" | "bundle manifest" | "bundle" | "weights manifest" | "image tower" | "text tower" | "text embeddings";

/** Download progress of a `load` request (several per file). */
export interface ProgressEvent {
  id: number;
  type: "progress";
  file: FileRole;
  /** The address, or the picked file's name. */
  url: string;
  /** Bytes received so far. */
  loaded: number;
  /** Content-Length, or null when the server did not send one (or compressed the body). */
  total: number | null;
  /** Milliseconds since this file's download started. */
  elapsedMs: number;
  done: boolean;
  /** Where the bytes came from: the network, the Cache API (an earlier visit), or the user. */
  source: "network" | "cache" | "local";
}

/** What the page needs to know about a loaded bundle. */
export interface BundleInfo {
  modelName: string;
  layers: number[];
  neurons: number;
  topK: number;
  components: number;
  words: number;
  classes: string[];
  images: number;
  /** The bundle directory's absolute address (thumbnails are relative to it); null for files. */
  baseUrl: string | null;
  /** The name of a bundle kept in this browser (its thumbnails are read from storage); else null. */
  kept: string | null;
  hasThumbnails: boolean;
}

export interface ReadyResponse {
  id: number;
  type: "ready";
  backend: BackendName;
  /** The WebGPU adapter in words when the backend is WebGPU and the browser describes it. */
  adapter: string | null;
  imageSize: number;
  /** The image tower's layers. */
  visionLayers: number;
  /** When the engine runs on the CPU although WebGPU was allowed or asked: why. */
  webgpuUnavailable: string | null;
  /** The WebAssembly module's CPU threads (rayon's pool on Web Workers; 1 without threads). */
  threads: number;
  /** Why the module runs on one thread when the machine has more cores; null otherwise. */
  singleThreadReason: string | null;
  weightsBytes: number;
  /** Milliseconds spent building the engine (and preparing the bundle) after the downloads. */
  initMs: number;
  bundle: BundleInfo | null;
  /** Whether the model's text side (text-embeddings.safetensors beside converted towers, or one
   * a build computed and kept in this browser) is loaded: without a bundle, analyses then still
   * give the image's classes. */
  textSide: boolean;
  /** The sha256 of the weights (the key of what this browser keeps for the model). */
  weightsSha256: string;
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

export interface CallResponse {
  id: number;
  type: "result";
  value: unknown;
  /** Milliseconds the worker spent on the call (queueing excluded). */
  ms: number;
}

export interface ErrorResponse {
  id: number;
  type: "error";
  message: string;
  /** The request was dropped from the queue by a `cancel`. */
  cancelled?: boolean;
  /** The failure looks like a lost GPU device (or a crash on WebGPU): retry on the CPU. */
  deviceLost?: boolean;
}

export interface MemoryResponse {
  id: number;
  type: "memory";
  /** The WebAssembly memory's size in bytes (it grows, never shrinks: its high-water mark);
   * null before the module is instantiated. */
  wasmBytes: number | null;
  /** On WebGPU, the bytes the GPU allocator holds (null on the CPU, or while a call runs). */
  gpuBytesReserved: number | null;
}

/** A build's progress: a stage's steps done, or a note. */
export interface BuildProgressEvent {
  id: number;
  type: "buildProgress";
  event: BuildProgress;
}

/** A finished build, kept in "My bundles" under `name`. */
export interface BuiltResponse {
  id: number;
  type: "built";
  name: string;
  ms: number;
  /** The build worker's WebAssembly memory at the end: its peak (the memory never shrinks). */
  wasmBytes: number | null;
}

export type FinalResponse = ReadyResponse | EmbeddingResponse | BenchmarkResponse | CallResponse | MemoryResponse | BuiltResponse;
export type WorkerResponse = ProgressEvent | BuildProgressEvent | FinalResponse | ErrorResponse;

/** The final response each request type resolves to. */
export interface ResponseFor {
  load: ReadyResponse;
  embedImage: EmbeddingResponse;
  embedText: EmbeddingResponse;
  benchmark: BenchmarkResponse;
  call: CallResponse;
  memory: MemoryResponse;
  build: BuiltResponse;
}

/** The parsed result of `benchmarkVision` (times in ms; "per image" means over the timed runs,
 * after one untimed first run). */
export interface BenchmarkResult {
  backend: string;
  /** The CPU backend's threads (1 in the single-threaded module). */
  threads: number;
  shape: string;
  batch: number;
  runs: number;
  load_ms: number;
  first_ms: number;
  mean_ms_per_image: number;
  /** One call into the module in microseconds (an export that only returns a number). */
  call_us: number;
  /** The lens of layer L-3: factors, forward + every neuron's effects, cheap projection. */
  lens: {
    layer: number;
    form: string;
    factors_ms: number;
    effects_with_forward_ms_per_image: number;
    projection_ms_per_image: number;
  };
  /** Present when the applications were asked for: one image at a time through the Engine,
   * with a synthetic bundle of the paper's sizes. */
  analysis?: {
    layers: number[];
    top_k: number;
    components: number;
    words: number;
    classes: number;
    significant_neurons: number;
    top_neurons: number;
    /** Making the random weights and bundle (the benchmark's own cost, not the page's). */
    synthesis_ms: number;
    /** Engine.create: sha256 of the weights, the model on the device. */
    engine_ms: number;
    /** Engine.loadBundle: parse, checks, lens factors and means. */
    bundle_load_ms: number;
    first_analysis_ms: number;
    first_segmentation_ms: number;
    analysis_ms_per_image: number;
    /** The forward's and the lens's parts of the analysis (its own timings). */
    forward_ms_per_image: number;
    lens_ms_per_image: number;
    segmentation_ms: number;
    /** Microseconds per crossing of the module's boundary, each [through serde-wasm-bindgen,
     * through JSON text]: the analysis result, a neuron card, the analysis options in. */
    conversions_us: { analysis: [number, number]; card: [number, number]; options: [number, number] };
  };
  /** Present when the probe was asked for: one block's steps timed alone (ms each). */
  steps?: { step: string; ms: number }[];
  /** Present when the probe was asked for: the forward's matrix products on this backend. */
  matmul?: {
    /** The threads the CPU backend uses (1 in a single-threaded module). */
    threads: number;
    timings: MatmulTiming[];
  };
}

/** One shape of the matrix-product probe: `[m, k] x [k, n]`, mean ms per product, GFLOP/s;
 * `kernel` is "matmul" (burn's) or "packed" (the CPU's packed linear layer the forward uses). */
export interface MatmulTiming {
  name: string;
  kernel: string;
  m: number;
  k: number;
  n: number;
  ms: number;
  gflops: number;
}

// The page's side of the worker protocol: one method per request, each a promise of the
// request's final response. Shared by the demo page (main.ts) and the benchmark (bench.ts).

import type { BuildOptions, BuildProgress } from "clip-lens-wasm";
import type {
  BenchShape,
  BuildControlRequest,
  BuildSourceImage,
  TextSideRequest,
  BuiltResponse,
  BackendChoice,
  BenchmarkResponse,
  EmbeddingResponse,
  EngineCalls,
  EngineMethod,
  ErrorResponse,
  LoadRequest,
  MemoryResponse,
  ProgressEvent,
  ReadyResponse,
  RequestType,
  ResponseFor,
  WorkerRequest,
  WorkerResponse,
} from "./protocol";

type RequestBody<T extends RequestType> = Omit<Extract<WorkerRequest, { type: T }>, "id" | "type">;

interface Pending {
  resolve(response: WorkerResponse): void;
  reject(error: Error): void;
  onProgress: ((event: ProgressEvent) => void) | undefined;
  onBuildProgress?: (event: BuildProgress) => void;
}

export class WorkerClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set when the worker itself failed; every request from then on fails with it. */
  private failure: Error | null = null;

  /** `url` is the worker's script; the page's own `?threads=N` is passed on to it. */
  constructor(url: URL = new URL("./worker.js", import.meta.url)) {
    const threads = new URLSearchParams(globalThis.location?.search ?? "").get("threads");
    if (threads !== null) url.searchParams.set("threads", threads);
    this.worker = new Worker(url, { type: "module" });
    this.worker.addEventListener("message", (event: MessageEvent<WorkerResponse>) => this.receive(event.data));
    this.worker.addEventListener("error", (event: ErrorEvent) => {
      event.preventDefault();
      const detail = event.message ? `: ${event.message}` : " (its script failed to load or threw at start-up)";
      this.fail(new Error(`The Web Worker stopped${detail}.`));
    });
    this.worker.addEventListener("messageerror", () => this.fail(new Error("A message from the Web Worker could not be read.")));
  }

  /** Downloads (or takes) the weights, config and bundle and builds the engine; `onProgress`
   * sees the downloads. Picked files' bytes are copied, not transferred: the page keeps them
   * for a restart on another backend. */
  load(body: Omit<LoadRequest, "id" | "type">, onProgress?: (event: ProgressEvent) => void): Promise<ReadyResponse> {
    return this.request("load", body, [], onProgress);
  }

  /** Calls an engine method in the worker (arguments copied, not transferred); `onProgress`
   * sees a download it needs (the text tower). The promise has the request's id as
   * `requestId` (for `cancel`). */
  call<M extends EngineMethod>(
    method: M,
    args: EngineCalls[M]["args"],
    onProgress?: (event: ProgressEvent) => void,
  ): Promise<EngineCalls[M]["result"]> & { requestId: number } {
    const requestId = this.nextId;
    const promise = this.request("call", { method, args } as unknown as RequestBody<"call">, [], onProgress).then(
      (response) => response.value as EngineCalls[M]["result"],
    );
    return Object.assign(promise, { requestId });
  }

  /** Drops queued requests that have not started; each then fails with a `WorkerError` whose
   * `cancelled` is true. A request already running finishes (only `terminate` stops it). */
  cancel(requestIds: number[]): void {
    if (requestIds.length > 0 && !this.failure)
      this.worker.postMessage({ id: this.nextId++, type: "cancel", ids: requestIds } satisfies WorkerRequest);
  }

  /** The embedding of an encoded image; `bytes` is transferred to the worker (left empty here). */
  embedImage(bytes: Uint8Array): Promise<EmbeddingResponse> {
    return this.request("embedImage", { bytes }, [bytes.buffer]);
  }

  embedText(text: string): Promise<EmbeddingResponse> {
    return this.request("embedText", { text });
  }

  /** Builds a bundle from `images` with the loaded model, kept as `name`; `onProgress` sees each
   * stage's steps and the notes. */
  build(
    name: string,
    images: BuildSourceImage[],
    options: BuildOptions,
    textSide: TextSideRequest | null,
    onProgress: (event: BuildProgress) => void,
  ): Promise<BuiltResponse> {
    const promise = this.request("build", { name, images, options, textSide });
    const pending = this.pending.get(this.nextId - 1);
    if (pending) pending.onBuildProgress = onProgress;
    return promise;
  }

  /** Pauses, resumes or stops the running build (a stop ends it after its next checkpoint). */
  controlBuild(action: BuildControlRequest["action"]): void {
    if (!this.failure) this.worker.postMessage({ id: this.nextId++, type: "buildControl", action } satisfies WorkerRequest);
  }

  /** The engine's memory: WebAssembly, and the GPU allocator's on WebGPU. */
  memory(): Promise<MemoryResponse> {
    return this.request("memory", {});
  }

  benchmark(
    shape: BenchShape,
    backend: BackendChoice,
    batch: number,
    runs: number,
    analysis = false,
    probe = false,
  ): Promise<BenchmarkResponse> {
    return this.request("benchmark", { shape, backend, batch, runs, analysis, probe });
  }

  /** Stops the worker at once, whatever it is doing. Its requests fail: with a `WorkerError`
   * whose `cancelled` is true when `cancelled`, else with "The Web Worker was stopped.". */
  terminate(cancelled = false): void {
    this.worker.terminate();
    this.fail(
      cancelled
        ? new WorkerError({ id: 0, type: "error", message: "Stopped.", cancelled: true })
        : new Error("The Web Worker was stopped."),
    );
  }

  private request<T extends RequestType>(
    type: T,
    body: RequestBody<T>,
    transfer: Transferable[] = [],
    onProgress?: (event: ProgressEvent) => void,
  ): Promise<ResponseFor[T]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<ResponseFor[T]>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (response) => resolve(response as ResponseFor[T]),
        reject,
        onProgress,
      });
      const request = { ...body, type, id } as unknown as WorkerRequest;
      this.worker.postMessage(request, transfer);
    });
  }

  private receive(response: WorkerResponse): void {
    const pending = this.pending.get(response.id);
    if (!pending) return;
    if (response.type === "progress") {
      pending.onProgress?.(response);
      return;
    }
    if (response.type === "buildProgress") {
      pending.onBuildProgress?.(response.event);
      return;
    }
    this.pending.delete(response.id);
    if (response.type === "error") pending.reject(new WorkerError(response));
    else pending.resolve(response);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/** An `error` response of the worker, as an Error. */
export class WorkerError extends Error {
  /** Dropped from the queue by `cancel`, or stopped while running by `terminate(true)`. */
  readonly cancelled: boolean;
  /** The GPU device was lost (or the module crashed on WebGPU): retrying on the CPU may work. */
  readonly deviceLost: boolean;

  constructor(response: ErrorResponse) {
    super(response.message);
    this.name = "WorkerError";
    this.cancelled = response.cancelled === true;
    this.deviceLost = response.deviceLost === true;
  }
}

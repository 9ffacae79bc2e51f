// The page's side of the worker protocol: one method per request, each a promise of the
// request's final response. Shared by the demo page (main.ts) and the benchmark (bench.ts).

import type {
  BackendChoice,
  BenchShape,
  BenchmarkResponse,
  EmbeddingResponse,
  ErrorResponse,
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
}

export class WorkerClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set when the worker itself failed; every request from then on fails with it. */
  private failure: Error | null = null;

  constructor(url: URL = new URL("./worker.js", import.meta.url)) {
    this.worker = new Worker(url, { type: "module" });
    this.worker.addEventListener("message", (event: MessageEvent<WorkerResponse>) => this.receive(event.data));
    this.worker.addEventListener("error", (event: ErrorEvent) => {
      event.preventDefault();
      const detail = event.message ? `: ${event.message}` : " (its script failed to load or threw at start-up)";
      this.fail(new Error(`The Web Worker stopped${detail}.`));
    });
    this.worker.addEventListener("messageerror", () => this.fail(new Error("A message from the Web Worker could not be read.")));
  }

  /** Downloads the weights (and config) and builds the engine; `onProgress` sees the downloads. */
  load(
    weightsUrl: string,
    configUrl: string | null,
    backend: BackendChoice,
    onProgress?: (event: ProgressEvent) => void,
  ): Promise<ReadyResponse> {
    return this.request("load", { weightsUrl, configUrl, backend }, [], onProgress);
  }

  /** The embedding of an encoded image; `bytes` is transferred to the worker (left empty here). */
  embedImage(bytes: Uint8Array): Promise<EmbeddingResponse> {
    return this.request("embedImage", { bytes }, [bytes.buffer]);
  }

  embedText(text: string): Promise<EmbeddingResponse> {
    return this.request("embedText", { text });
  }

  benchmark(shape: BenchShape, backend: BackendChoice, batch: number, runs: number): Promise<BenchmarkResponse> {
    return this.request("benchmark", { shape, backend, batch, runs });
  }

  terminate(): void {
    this.worker.terminate();
    this.fail(new Error("The Web Worker was stopped."));
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
  constructor(response: ErrorResponse) {
    super(response.message);
    this.name = "WorkerError";
  }
}

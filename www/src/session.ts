// The engine as the page sees it: a worker with a model and a bundle, restartable on another
// backend with the same sources (a backend switch, or the fallback to the CPU when the GPU
// device is lost). Views call it and never see the worker.

import { WorkerClient, WorkerError } from "./client";
import type {
  BackendChoice,
  BundleSource,
  EngineCalls,
  EngineMethod,
  FileSource,
  LoadRequest,
  ProgressEvent,
  ReadyResponse,
  WeightsSource,
} from "./protocol";

/** What to load: the sources outlive the worker, so a restart needs nothing from the user. */
export interface Sources {
  weights: WeightsSource;
  config: FileSource | null;
  bundle: BundleSource | null;
}

export interface SessionEvents {
  /** Download progress of a (re)load. */
  progress(event: ProgressEvent): void;
  /** A new engine is ready (the first, or after a switch or a fallback); the start resolves
   * once what this returns does. */
  ready(ready: ReadyResponse, reason: string | null): void | Promise<void>;
}

export class Session {
  private client: WorkerClient | null = null;
  private current: ReadyResponse | null = null;
  private loading: Promise<ReadyResponse> | null = null;
  private simulateDeviceLoss: boolean;

  constructor(
    private sources: Sources,
    private backend: BackendChoice,
    private readonly events: SessionEvents,
    simulateDeviceLoss = false,
  ) {
    this.simulateDeviceLoss = simulateDeviceLoss;
  }

  /** What the engine was loaded from (a build's worker loads the same model). */
  get loadedFrom(): { sources: Sources; backend: BackendChoice } {
    return { sources: this.sources, backend: this.backend };
  }

  /** The ready engine's description (null before the first load). */
  get ready(): ReadyResponse | null {
    return this.current;
  }

  /** Starts (or restarts) the worker on `backend` with `sources`; resolves when it is ready. */
  start(backend: BackendChoice = this.backend, sources: Sources = this.sources, reason: string | null = null): Promise<ReadyResponse> {
    this.backend = backend;
    this.sources = sources;
    this.client?.terminate();
    const client = new WorkerClient();
    this.client = client;
    // Posted without a transfer list: the worker gets a copy, and picked files' bytes stay here
    // for a restart.
    const body: Omit<LoadRequest, "id" | "type"> = { ...sources, backend, simulateDeviceLoss: this.simulateDeviceLoss };
    this.simulateDeviceLoss = false;
    const loading = client
      .load(body, (event) => this.events.progress(event))
      .then(async (ready) => {
        if (this.client === client) {
          this.current = ready;
          await this.events.ready(ready, reason);
        }
        return ready;
      });
    this.loading = loading;
    return loading;
  }

  /** Calls an engine method; when the GPU device is lost, restarts on the CPU and retries
   * once. `cancelToken` collects the request ids so that a view can cancel queued calls. */
  async call<M extends EngineMethod>(method: M, args: EngineCalls[M]["args"], queued?: Set<number>): Promise<EngineCalls[M]["result"]> {
    await this.loading;
    const client = this.client;
    if (client === null) throw new Error("The engine has not been started.");
    const pending = client.call(method, args, (event) => this.events.progress(event));
    queued?.add(pending.requestId);
    try {
      return await pending;
    } catch (error) {
      if (!(error instanceof WorkerError && error.deviceLost) || this.current?.backend !== "webgpu") throw error;
      await this.start("cpu", this.sources, `The GPU device was lost (${error.message}); the engine moved to the CPU.`);
      return this.call(method, args, queued);
    } finally {
      queued?.delete(pending.requestId);
    }
  }

  /** Drops the calls in `queued` that have not started. */
  cancel(queued: Set<number>): void {
    this.client?.cancel([...queued]);
  }

  /** Stops the call that is running now, with every call still waiting in the worker: each
   * fails with a `WorkerError` whose `cancelled` is true. Nothing else interrupts WebAssembly
   * while it computes, so the worker is stopped (its memory freed) and a new one loads the same
   * sources on the same backend, from the browser's cache; resolves when it is ready. */
  stopRunning(): Promise<ReadyResponse> {
    this.client?.terminate(true);
    return this.start(this.backend, this.sources);
  }

  /** The engine's memory: its WebAssembly memory and, on WebGPU, the GPU allocator's. */
  async memory(): Promise<{ wasmBytes: number | null; gpuBytesReserved: number | null }> {
    await this.loading;
    return this.client === null ? { wasmBytes: null, gpuBytesReserved: null } : this.client.memory();
  }
}

// The image lab's queue: images run one at a time, in the order they came; the waiting ones can
// be cancelled (the running one finishes, or is stopped by its run failing as cancelled); a
// batch added once the previous one has finished replaces it; a finished image can run again.
// Pure: no DOM (the lab draws the rows from the hooks; the unit tests run it in Node).

export type QueueState = "queued" | "running" | "done" | "error" | "cancelled";

export interface QueueEntry<T> {
  readonly value: T;
  readonly state: QueueState;
  /** The last run's outcome: its result's label when done, its error's message on error. */
  readonly detail: string | null;
}

export interface QueueHooks<T> {
  /** Runs one value; resolves to its result's label. */
  run(value: T): Promise<string>;
  /** Whether a run's failure is a cancellation: its entry is "cancelled", not "error". */
  isCancellation(error: unknown): boolean;
  /** An entry joined the queue (queued). */
  added?(entry: QueueEntry<T>): void;
  /** An entry's state changed. */
  changed?(entry: QueueEntry<T>): void;
  /** The queue was emptied (a new batch, or clear()); `values` were its entries. */
  cleared?(values: readonly T[]): void;
}

interface Entry<T> {
  readonly value: T;
  state: QueueState;
  detail: string | null;
}

export type QueueCounts = Record<QueueState, number>;

export class AnalysisQueue<T> {
  private entries: Entry<T>[] = [];
  private draining = false;

  constructor(private readonly hooks: QueueHooks<T>) {}

  /** The entries, in their order. */
  get items(): readonly QueueEntry<T>[] {
    return this.entries;
  }

  /** Whether an entry is waiting or running. */
  get busy(): boolean {
    return this.entries.some((entry) => entry.state === "queued" || entry.state === "running");
  }

  /** How many entries are in each state. */
  counts(): QueueCounts {
    const counts: QueueCounts = { queued: 0, running: 0, done: 0, error: 0, cancelled: 0 };
    for (const entry of this.entries) counts[entry.state]++;
    return counts;
  }

  /** Queues `values` after the waiting ones (a new batch once the previous one has finished:
   * the queue is cleared first) and runs the queue; resolves when it has run dry, at once when
   * another call is already running it. */
  async add(values: readonly T[]): Promise<void> {
    if (!this.busy) this.clear();
    for (const value of values) {
      const entry: Entry<T> = { value, state: "queued", detail: null };
      this.entries.push(entry);
      this.hooks.added?.(entry);
    }
    await this.drain();
  }

  /** Runs a finished (done or failed) entry's value again, outside the queue's order. */
  async rerun(value: T): Promise<void> {
    const entry = this.entries.find((e) => e.value === value);
    if (entry && (entry.state === "done" || entry.state === "error")) await this.runEntry(entry);
  }

  /** Cancels the entries that have not started. */
  cancelWaiting(): void {
    for (const entry of this.entries) if (entry.state === "queued") this.set(entry, "cancelled", null);
  }

  /** Cancels the waiting entries and empties the queue (a running one finishes unlisted). */
  clear(): void {
    this.cancelWaiting();
    const values = this.entries.map((entry) => entry.value);
    this.entries = [];
    this.hooks.cleared?.(values);
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let entry = this.next(); entry; entry = this.next()) await this.runEntry(entry);
    } finally {
      this.draining = false;
    }
  }

  private next(): Entry<T> | undefined {
    return this.entries.find((entry) => entry.state === "queued");
  }

  private async runEntry(entry: Entry<T>): Promise<void> {
    this.set(entry, "running", null);
    try {
      this.set(entry, "done", await this.hooks.run(entry.value));
    } catch (error) {
      if (this.hooks.isCancellation(error)) this.set(entry, "cancelled", null);
      else this.set(entry, "error", error instanceof Error ? error.message : String(error));
    }
  }

  private set(entry: Entry<T>, state: QueueState, detail: string | null): void {
    entry.state = state;
    entry.detail = detail;
    this.hooks.changed?.(entry);
  }
}

/** The queue's status line ("" for fewer than two entries). */
export function queueSummary(counts: QueueCounts): string {
  const total = counts.queued + counts.running + counts.done + counts.error + counts.cancelled;
  if (total < 2) return "";
  return `${counts.done} analysed, ${counts.queued + counts.running} waiting, ${counts.error} failed, ${counts.cancelled} cancelled.`;
}

// The worker's errors: Rust panics kept from the console (the page shows their text), the
// message a failure shows (with a hint when memory ran out), and the kind an engine error
// carries. Shared by the worker's parts; the page sees only the protocol's error messages.

import type { EngineErrorKind } from "clip-lens-wasm";

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

/** The `kind` an engine error carries (the crate's `Error::kind`), or null for other errors. */
export function errorKind(error: unknown): EngineErrorKind | null {
  const kind = typeof error === "object" && error !== null ? (error as { kind?: unknown }).kind : undefined;
  return typeof kind === "string" ? (kind as EngineErrorKind) : null;
}

export function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const outOfMemory = /out of memory|allocation failed|could not allocate|memory allocation of \d+ bytes failed|WebAssembly.Memory/i.test(
    text,
  );
  if (error instanceof WebAssembly.RuntimeError) {
    // A trap without a panic is an abort: how Rust in WebAssembly fails when an allocation does.
    const aborted = lastPanic === null;
    crashed = lastPanic ?? `${error.message} (an abort without a panic message)`;
    const memoryHint = outOfMemory || aborted || /alloc|memory/i.test(crashed) ? OUT_OF_MEMORY_HINT : "";
    return `The WebAssembly module crashed: ${crashed}${memoryHint}`;
  }
  return outOfMemory ? `${text}.${OUT_OF_MEMORY_HINT}` : text;
}

/** The panic that crashed the module, or null: after one the engine is not used again. */
export function crashReason(): string | null {
  return crashed;
}

/** A failure to build the engine; `detail` is the engine's own message. */
export class LoadError extends Error {
  constructor(
    message: string,
    readonly detail: string,
  ) {
    super(message);
  }
}

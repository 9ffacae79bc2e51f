// Number formatting shared by the pages.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB"] as const;

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** 1 -> "1 thread", 2 -> "2 threads". */
export function formatThreads(threads: number): string {
  return `${threads} thread${threads === 1 ? "" : "s"}`;
}

/** 12.345 -> "12.3 ms", 2345 -> "2.35 s". */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A number with a fixed number of decimals ("-0.0000" shown as "0.0000"). */
export function formatValue(value: number, decimals = 4): string {
  const text = value.toFixed(decimals);
  return Number(text) === 0 ? (0).toFixed(decimals) : text;
}

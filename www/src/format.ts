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

/** A number with `digits` significant digits, without an exponent for everyday sizes
 * (0.012345 -> "0.0123", 1234.5 -> "1230"). */
export function formatSignificant(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  return String(Number(value.toPrecision(digits)));
}

/** "+0.123" or "−0.123" (a typographic minus). */
export function formatSigned(value: number, decimals = 3): string {
  return `${value < 0 ? "−" : "+"}${formatValue(Math.abs(value), decimals)}`;
}

/** 1 -> "1st", 3 -> "3rd", 12 -> "12th", 22 -> "22nd". */
export function formatOrdinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? "th" : (({ 1: "st", 2: "nd", 3: "rd" } as Record<number, string>)[n % 10] ?? "th");
  return `${n}${suffix}`;
}

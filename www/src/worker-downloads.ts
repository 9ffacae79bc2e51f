// Downloads for the worker: through the Cache API (a second visit loads from disk after an
// ETag/Last-Modified check, or offline), with progress messages to the page, and readable
// errors.

import type { FileRole, FileSource, ProgressEvent, WorkerResponse } from "./protocol";
import { describe } from "./worker-errors";

let sendProgress: (message: WorkerResponse) => void = () => {};

/** Where progress messages go (the worker's `postMessage`). */
export function sendProgressTo(post: (message: WorkerResponse) => void): void {
  sendProgress = post;
}

const PROGRESS_INTERVAL_MS = 50;
const CACHE_NAME = "clip-lens-files-v1";

type Report = (loaded: number, total: number | null, done: boolean, source: ProgressEvent["source"]) => void;

export function reporter(id: number, file: FileRole, url: string): Report {
  const start = performance.now();
  return (loaded, total, done, source) =>
    sendProgress({ id, type: "progress", file, url, loaded, total, elapsedMs: performance.now() - start, done, source });
}

/** The Cache API's store, or null where the browser has none (an insecure origin) or refuses. */
async function fileCache(): Promise<Cache | null> {
  try {
    return "caches" in globalThis ? await caches.open(CACHE_NAME) : null;
  } catch {
    return null;
  }
}

/** Whether a cached response is still the server's file: the server's ETag (else
 * Last-Modified and Content-Length) is unchanged. Offline (the check fails), the cached copy
 * is used. */
async function cachedIsCurrent(url: string, cached: Response): Promise<boolean> {
  let head: Response;
  try {
    head = await fetch(url, { method: "HEAD", cache: "no-store" });
  } catch {
    return true;
  }
  if (!head.ok) return false;
  const same = (name: string): boolean => head.headers.get(name) === cached.headers.get(name);
  const etag = head.headers.get("ETag");
  if (etag !== null) return same("ETag");
  return head.headers.get("Last-Modified") !== null && same("Last-Modified") && same("Content-Length");
}

/** The bytes of `url`: from the Cache API when an earlier visit stored the current version,
 * else downloaded with progress against Content-Length (and stored). Readable errors. */
export async function download(id: number, file: FileRole, url: string): Promise<Uint8Array> {
  const report = reporter(id, file, url);
  const cache = await fileCache();
  const cached = await cache?.match(url).catch(() => undefined);
  if (cached && (await cachedIsCurrent(url, cached))) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    report(bytes.length, bytes.length, true, "cache");
    return bytes;
  }
  const { bytes, headers } = await fetchWithProgress(file, url, report);
  if (cache) {
    // A full copy with the server's validators; a failure (quota) only costs the next visit.
    const stored = new Headers();
    for (const name of ["ETag", "Last-Modified", "Content-Type"]) {
      const value = headers.get(name);
      if (value !== null) stored.set(name, value);
    }
    stored.set("Content-Length", String(bytes.length));
    await cache
      .put(url, new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]), { headers: stored }))
      .catch((error: unknown) => console.warn(`Not cached: ${url}: ${describe(error)}`));
  }
  return bytes;
}

async function fetchWithProgress(file: FileRole, url: string, report: Report): Promise<{ bytes: Uint8Array; headers: Headers }> {
  let response: Response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (error) {
    throw new Error(
      `Could not download the ${file} from ${url}: the server could not be reached (${describe(error)}). ` +
        "Check the address and your connection; files on another server must come over https, with CORS headers that allow this page.",
    );
  }
  if (!response.ok) {
    const status = `${response.status} ${response.statusText}`.trim();
    throw new Error(`Could not download the ${file} from ${url}: the server answered HTTP ${status}.`);
  }

  // Content-Length counts encoded bytes; with a compressed body it says nothing about the bytes read.
  const encoding = response.headers.get("Content-Encoding");
  const length = Number(response.headers.get("Content-Length") ?? Number.NaN);
  const total = Number.isSafeInteger(length) && length >= 0 && (!encoding || encoding === "identity") ? length : null;

  report(0, total, false, "network");
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.length, total, true, "network");
    return { bytes, headers: response.headers };
  }

  const reader = response.body.getReader();
  let buffer = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  let lastReport = performance.now();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buffer.length) {
        const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length));
        grown.set(buffer.subarray(0, loaded));
        buffer = grown;
      }
      buffer.set(value, loaded);
      loaded += value.length;
      const now = performance.now();
      if (now - lastReport >= PROGRESS_INTERVAL_MS) {
        lastReport = now;
        report(loaded, total, false, "network");
      }
    }
  } catch (error) {
    throw new Error(`The download of the ${file} from ${url} broke off after ${loaded} bytes: ${describe(error)}`);
  }
  if (total !== null && loaded !== total) {
    throw new Error(`The download of the ${file} from ${url} is incomplete: ${loaded} of ${total} bytes.`);
  }
  report(loaded, total, true, "network");
  return { bytes: buffer.subarray(0, loaded), headers: response.headers };
}

/** The bytes of `url` as [download] gives them, or null when the server has no such file
 * (HTTP 404 or 410 to a HEAD request): for files a directory may or may not hold. */
export async function downloadIfPresent(id: number, file: FileRole, url: string): Promise<Uint8Array | null> {
  const head = await fetch(url, { method: "HEAD", cache: "no-store" }).catch(() => null);
  if (head !== null && (head.status === 404 || head.status === 410)) return null;
  return download(id, file, url);
}

/** The bytes of a file source; picked files report one "local" progress event. */
export async function obtain(id: number, file: FileRole, source: FileSource): Promise<Uint8Array> {
  if (source.kind === "url") return download(id, file, source.url);
  reporter(id, file, source.name)(source.bytes.length, source.bytes.length, true, "local");
  return source.bytes;
}

export function looksLikeHtml(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).trimStart().toLowerCase();
  return /^<(!doctype|html|head|body|\?xml)/.test(head);
}

// The site's service worker, for static hosts that cannot send headers (GitHub Pages): it adds
// the headers that make the site cross-origin isolated, which the browser requires before it
// gives WebAssembly shared memory (the threaded module). isolation.ts registers it and reloads
// the page once. Same-origin GET requests only: documents get COOP and COEP, every response
// CORP (so that an isolated page elsewhere may embed the card's images and the iframe).
// Cross-origin requests (weights on another host) are not touched: they go out as CORS
// requests, which COEP's require-corp accepts.

/** The parts of ServiceWorkerGlobalScope used here (tsconfig has the DOM lib, not WebWorker). */
interface FetchEventLike extends Event {
  readonly request: Request;
  respondWith(response: Promise<Response>): void;
}
interface ExtendableEventLike extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface ServiceWorkerScope {
  skipWaiting(): Promise<void>;
  readonly clients: { claim(): Promise<void> };
  readonly location: Location;
  addEventListener(type: "install" | "activate", listener: (event: ExtendableEventLike) => void): void;
  addEventListener(type: "fetch", listener: (event: FetchEventLike) => void): void;
}
const sw = globalThis as unknown as ServiceWorkerScope;

/** The headers of an isolated site: COOP and COEP on documents, CORP on everything. */
const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "cross-origin",
} as const;

sw.addEventListener("install", () => void sw.skipWaiting());
sw.addEventListener("activate", (event) => event.waitUntil(sw.clients.claim()));

sw.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET" || new URL(request.url).origin !== sw.location.origin) return;
  // "only-if-cached" is allowed only for same-origin "same-origin"-mode requests.
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") return;
  event.respondWith(withIsolation(request));
});

async function withIsolation(request: Request): Promise<Response> {
  const response = await fetch(request);
  // Opaque and error responses cannot be rebuilt; status 0 has no headers to add to.
  if (response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION_HEADERS)) {
    if (!headers.has(name)) headers.set(name, value);
  }
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

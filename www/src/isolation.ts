// Cross-origin isolation for the threaded WebAssembly module. serve.mjs sends the headers
// itself; on a static host that cannot (GitHub Pages) the site's service worker
// (isolation-sw.ts) adds them, and the page reloads once, under it, to be isolated.

const RELOADED_KEY = "clip-lens-isolation-reload";

/** Whether the page should try the service worker: not isolated yet, able to register one
 * (a secure context), the top-level page (an iframe's isolation is its parent's to give), and
 * more than one thread wanted. */
function wantsServiceWorker(): boolean {
  if (globalThis.crossOriginIsolated || !globalThis.isSecureContext || !("serviceWorker" in navigator)) return false;
  if (window.top !== window) return false;
  return new URLSearchParams(location.search).get("threads") !== "1" && (navigator.hardwareConcurrency || 1) > 1;
}

/** Registers the isolation service worker where the page is not isolated, and reloads the page
 * once it controls it. Resolves true when a reload is under way (the caller stops there);
 * false when the page goes on as it is (isolated, or isolation cannot be had: it then runs the
 * single-threaded module and says why). Never reloads twice in a row: a browser whose service
 * worker's headers do not isolate it would otherwise loop. */
export async function ensureIsolation(): Promise<boolean> {
  try {
    return await isolateOnce();
  } catch (error) {
    // Storage refused (a browser setting) or the like: the page goes on, on one thread.
    console.warn(`clip-lens: no cross-origin isolation (${String(error)}); running on one thread`);
    return false;
  }
}

async function isolateOnce(): Promise<boolean> {
  if (globalThis.crossOriginIsolated) sessionStorage.removeItem(RELOADED_KEY);
  if (!wantsServiceWorker()) return false;
  if (sessionStorage.getItem(RELOADED_KEY) !== null) {
    console.warn(
      "clip-lens: the isolation service worker is active but the page is still not cross-origin isolated; running on one thread",
    );
    return false;
  }
  try {
    await navigator.serviceWorker.register(new URL("./isolation-sw.js", import.meta.url));
    await navigator.serviceWorker.ready;
  } catch (error) {
    console.warn(`clip-lens: the isolation service worker could not be registered (${String(error)}); running on one thread`);
    return false;
  }
  sessionStorage.setItem(RELOADED_KEY, "1");
  location.reload();
  return true;
}

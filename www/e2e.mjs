// End-to-end tests of the built site (www/dist) in Debian's Chromium, driven by playwright-core:
// the demo loads to `data-status="ready"` on WebGPU and on the CPU and analyses the sample
// (classes, concepts, a heatmap that is not blank); a backend switch and a lost GPU device
// move to the CPU; ?image=&concept= links, the image queue (50 dropped images, cancel; no
// freezing or leaks), stopping a running analysis, neuron deep
// links with activation maps, search, the adversarial miner, embed mode, a phone-sized screen;
// a broken weights address shows an error (not a blank page); the embeddable neuron card
// renders from the bundle alone (and reports a bad neuron). Screenshots go to $E2E_OUT (default ../target/e2e).
// Usage: node e2e.mjs (after `npm run build`; CHROMIUM=/path/to/chromium to override,
// E2E_ONLY=image-queue,search to run only some checks).

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { mkdir, writeFile } from "node:fs/promises";
import { deflateSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const www = dirname(fileURLToPath(import.meta.url));
const out = process.env.E2E_OUT ?? join(www, "..", "target", "e2e");
const port = Number(process.env.E2E_PORT ?? 8765);
const base = `http://127.0.0.1:${port}`;
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 300_000);

await mkdir(out, { recursive: true });
// The site must have its threaded module (CLIP_LENS_PKG_THREADS when building): the CPU checks
// expect one thread per core. E2E_NO_THREADS=1 checks a site built without it.
const threadsBuilt = existsSync(join(www, "dist", "pkg-threads", "clip_lens_bg.wasm"));
if (!threadsBuilt && process.env.E2E_NO_THREADS !== "1") {
  console.error("e2e: www/dist has no pkg-threads (build the threaded module, or set E2E_NO_THREADS=1)");
  process.exit(1);
}

/** serve.mjs on `servePort` (extra environment in `env`), once it listens. */
async function serve(servePort, env = {}) {
  const child = spawn(process.execPath, [join(www, "serve.mjs")], { env: { ...process.env, ...env, PORT: String(servePort) }, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => String(chunk).includes("serve:") && resolve());
    child.on("exit", (code) => reject(new Error(`serve.mjs exited with ${code}`)));
  });
  return child;
}
const server = await serve(port);
// The same site from a host that cannot send headers (ISOLATION=0): the service worker's case.
const plainPort = port + 1;
const plainServer = await serve(plainPort, { ISOLATION: "0" });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // A synthetic camera (a test pattern) for the lab's camera snapshot, without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  ],
});

const results = [];
/** Figures the checks measure, written to $E2E_OUT/timings.json. */
const timings = {};
/** E2E_ONLY=name,name runs only those checks (while working on them). */
const only = process.env.E2E_ONLY ? process.env.E2E_ONLY.split(",") : null;
async function check(name, run) {
  if (only !== null && !only.includes(name)) return;
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  // serve.mjs sends a Content-Security-Policy without 'unsafe-eval' or 'unsafe-inline' (only
  // 'wasm-unsafe-eval'): any violation fails the check.
  const violations = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  const started = Date.now();
  try {
    await run(page);
    if (violations.length) throw new Error(`CSP violations: ${violations.join("; ")}`);
    results.push({ name, ok: true, ms: Date.now() - started });
  } catch (error) {
    results.push({ name, ok: false, ms: Date.now() - started, error: `${error.message}${errors.length ? ` (page errors: ${errors.join("; ")})` : ""}` });
  } finally {
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true }).catch(() => {});
    await page.close();
  }
}

async function status(page, selector) {
  await page.waitForFunction((s) => ["ready", "error"].includes(document.querySelector(s)?.dataset.status ?? ""), selector, { timeout: TIMEOUT });
  return page.$eval(selector, (element) => ({ status: element.dataset.status, text: element.textContent ?? "" }));
}

/** What the page says of the CPU threads on this machine: one per core, at most 8, where the
 * site has its threaded module. */
async function expectedThreads(page) {
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = threadsBuilt ? Math.max(1, Math.min(cores, 8)) : 1;
  return { threads, text: threads === 1 ? "1 thread" : `${threads} threads` };
}

/** Throws unless the backend line names the CPU with the expected threads. */
async function checkCpuThreads(page) {
  const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
  const { text } = await expectedThreads(page);
  if (!shown.startsWith(`CPU, ${text}`)) throw new Error(`the page says the backend is “${shown}”, not the CPU on ${text}`);
}

/** Waits for `selector`'s data-status to be ready or error; throws unless it is ready. */
async function ready(page, selector) {
  const { status: s, text } = await status(page, selector);
  if (s !== "ready") throw new Error(`${selector}: status ${s}: ${text.slice(0, 400)}`);
}

/** The heatmap overlay's drawn pixels: how many are opaque, and how many distinct colours. */
async function overlayStats(page, selector) {
  return page.$eval(selector, (canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    let opaque = 0;
    for (let i = 0; i < data.length; i += 4 * 7) {
      if (data[i + 3] > 0) opaque++;
      colours.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
    }
    return { width: canvas.width, height: canvas.height, opaque, colours: colours.size };
  });
}

/** The lab shows classes, concepts and a heatmap with some structure. */
async function checkLab(page) {
  await ready(page, "#lab-result");
  const classes = await page.$$eval("#lab-classes li", (items) => items.map((item) => item.textContent));
  if (classes.length < 1) throw new Error("no classes");
  const concepts = await page.$$eval("#lab-concepts li", (items) => items.length);
  if (concepts < 1) throw new Error("no concepts");
  const heat = await overlayStats(page, "#lab-overlay");
  if (heat.opaque === 0 || heat.colours < 8) throw new Error(`the heatmap looks blank: ${JSON.stringify(heat)}`);
  return { classes, heat };
}

/** When the page painted first and when it was ready with the sample analysed (ms after it
 * was opened). */
async function readyTimes(page) {
  const readyAt = await page.evaluate(() => performance.getEntriesByName("clip-lens-ready")[0]?.startTime ?? null);
  const paint = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null);
  return { first_contentful_paint_ms: paint, ready_with_sample_analysed_ms: readyAt };
}

for (const backend of ["webgpu", "cpu"]) {
  await check(`demo-${backend}`, async (page) => {
    await page.goto(`${base}/index.html?backend=${backend}`);
    await ready(page, "main");
    const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
    if (!shown.toLowerCase().includes(backend === "cpu" ? "cpu" : "webgpu")) throw new Error(`the page says the backend is “${shown}”`);
    if (backend === "cpu") await checkCpuThreads(page);
    await checkLab(page);
    timings[`demo-${backend}`] = await readyTimes(page);
    // The demo's converted towers: the image tower only; the text tower waits for text.
    const files = await page.$$eval("#downloads li", (items) => items.map((item) => item.dataset.file));
    if (!files.includes("image tower") || files.includes("text tower")) throw new Error(`downloads: ${files.join(", ")}`);
  });
}

// Headless Chromium's only WebGPU adapter is SwiftShader (software, isFallbackAdapter): `auto`
// takes the CPU and says why; `?backend=webgpu` (demo-webgpu above) still uses it.
await check("auto-skips-software-webgpu", async (page) => {
  await page.goto(`${base}/index.html`);
  await ready(page, "main");
  const backend = await page.$eval("#backend", (e) => e.dataset.backend);
  const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
  if (backend !== "cpu" || !/software/.test(shown)) throw new Error(`backend ${backend}, shown “${shown}”`);
  await checkCpuThreads(page);
  await checkLab(page);
  timings["demo-auto"] = await readyTimes(page);
});

await check("backend-switch", async (page) => {
  await page.goto(`${base}/index.html?backend=webgpu`);
  await ready(page, "main");
  await page.selectOption("#backend-choice", "cpu");
  await page.waitForFunction(() => document.querySelector("#backend")?.dataset.backend === "cpu", null, { timeout: TIMEOUT });
  await ready(page, "main");
  await checkLab(page);
});

await check("device-lost-fallback", async (page) => {
  await page.goto(`${base}/index.html?backend=webgpu&simulate=device-lost`);
  await ready(page, "main");
  const backend = await page.$eval("#backend", (e) => e.dataset.backend);
  const notice = await page.$eval("#notice", (e) => (e.hidden ? "" : e.textContent));
  if (backend !== "cpu" || !/lost/.test(notice)) throw new Error(`backend ${backend}, notice “${notice}”`);
  await checkLab(page);
});

await check("image-and-concept-link", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu&image=samples/horse.png&concept=a%20horse`);
  await ready(page, "main");
  await checkLab(page);
  const concept = await page.$eval("#lab-result", (e) => e.dataset.concept);
  const caption = await page.$eval("#lab-caption", (e) => e.textContent);
  if (concept !== "a horse" || caption !== "horse.png") throw new Error(`concept ${concept}, image ${caption}`);
  // Another concept, then the mask view.
  await page.fill("#concept-input", "predicted");
  await page.click("#concept-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#lab-result")?.dataset.concept !== "a horse", null, { timeout: TIMEOUT });
  await ready(page, "#lab-result");
  await page.check("#mask-toggle");
  const mask = await overlayStats(page, "#lab-overlay");
  if (mask.opaque === 0) throw new Error("the mask view draws nothing");
});

await check("paste-and-camera", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  // Paste an image (what Ctrl+V with an image on the clipboard delivers).
  await page.evaluate(async () => {
    const blob = await (await fetch("samples/horse.png")).blob();
    const data = new DataTransfer();
    data.items.add(new File([blob], "pasted.png", { type: "image/png" }));
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
  });
  await page.waitForFunction(() => document.querySelector("#lab-caption")?.textContent === "pasted.png", null, { timeout: TIMEOUT });
  await checkLab(page);
  // The camera: open the preview, take the snapshot.
  await page.click("#camera-button");
  await page.waitForFunction(() => (document.querySelector("#camera video")?.videoWidth ?? 0) > 0, null, { timeout: TIMEOUT });
  await page.click("#camera-button");
  await page.waitForFunction(() => /^camera snapshot/.test(document.querySelector("#lab-caption")?.textContent ?? ""), null, { timeout: TIMEOUT });
  await checkLab(page);
});

/** Drops files (names in www/samples, or {name, type, base64}) on `selector` as a drag and drop
 * from the desktop does: dragenter, dragover and drop events carrying them. */
async function dropFiles(page, selector, files) {
  await page.evaluate(async ({ selector, files }) => {
    const transfer = new DataTransfer();
    for (const file of files) {
      const blob = typeof file === "string" ? await (await fetch(`samples/${file}`)).blob() : new Blob([Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))], { type: file.type });
      transfer.items.add(new File([blob], typeof file === "string" ? file : file.name, { type: blob.type }));
    }
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }, { selector, files });
}

/** Counts the page's live object URLs and records main-thread long tasks (installed before the
 * page's scripts run). */
async function watchMainThread(page) {
  await page.addInitScript(() => {
    const live = new Set();
    const create = URL.createObjectURL.bind(URL);
    const revoke = URL.revokeObjectURL.bind(URL);
    URL.createObjectURL = (object) => {
      const url = create(object);
      live.add(url);
      return url;
    };
    URL.revokeObjectURL = (url) => {
      live.delete(url);
      revoke(url);
    };
    window.__liveObjectUrls = () => live.size;
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((entry) => entry.duration))).observe({ type: "longtask", buffered: true });
  });
}

/** The page's JS heap after a garbage collection, its live object URLs and the engine's wasm
 * memory (the lab's `data-wasm-bytes`, refreshed after each analysis). */
async function memory(page, cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  return {
    js_heap_mb: metrics.find((m) => m.name === "JSHeapUsedSize").value / 2 ** 20,
    live_object_urls: await page.evaluate(() => window.__liveObjectUrls()),
    wasm_mb: Number(await page.$eval("#lab-result", (e) => e.dataset.wasmBytes ?? "0")) / 2 ** 20,
  };
}

const queueStates = (page) => page.$$eval(".queue-item", (items) => items.map((item) => item.dataset.state));

await check("image-queue", async (page) => {
  // 50 dropped images: the waiting ones cancelled; then 50 more, all analysed. The page must
  // stay responsive (main-thread long tasks) and not leak (object URLs, JS heap, wasm memory).
  await watchMainThread(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  const names = Array.from({ length: 50 }, (_, i) => ["cat.jpg", "coffee.jpg", "rocket.jpg", "horse.png", "astronaut.jpg"][i % 5]);
  await page.evaluate(() => (window.__longTasks.length = 0));
  await dropFiles(page, "#lab-drop", names);
  await page.click("#queue-cancel", { timeout: 5000 });
  await page.waitForFunction(() => [...document.querySelectorAll(".queue-item")].every((item) => !["queued", "running"].includes(item.dataset.state)), null, { timeout: TIMEOUT });
  const states = await queueStates(page);
  const count = (state) => states.filter((s) => s === state).length;
  if (states.length !== 50 || count("cancelled") === 0 || count("done") === 0 || count("error") > 0) throw new Error(`queue states: ${JSON.stringify(states)}`);
  await ready(page, "#lab-result");
  const first = await memory(page, cdp);
  // A new batch once that one is over: a new queue, analysed to the end.
  const started = Date.now();
  await dropFiles(page, "#lab-drop", names);
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll(".queue-item")];
    return items.length === 50 && items.every((item) => item.dataset.state === "done");
  }, null, { timeout: TIMEOUT });
  await ready(page, "#lab-result");
  const seconds = (Date.now() - started) / 1000;
  const second = await memory(page, cdp);
  const longTasks = await page.evaluate(() => window.__longTasks);
  timings["image-queue"] = { first_batch: first, after_50_more: second, seconds_for_50: seconds, main_thread_long_tasks: longTasks.length, longest_task_ms: Math.max(0, ...longTasks) };
  // The queue keeps one object URL per image (to show it again) and the shown image's.
  if (second.live_object_urls > 51) throw new Error(`${second.live_object_urls} live object URLs after two batches of 50: the first batch's leaked`);
  if (second.js_heap_mb - first.js_heap_mb > 24) throw new Error(`the JS heap grew by ${(second.js_heap_mb - first.js_heap_mb).toFixed(1)} MB over 50 images`);
  if (!(second.wasm_mb > 0) || second.wasm_mb - first.wasm_mb > 16) throw new Error(`wasm memory ${first.wasm_mb} MB, then ${second.wasm_mb} MB after 50 images`);
  if (Math.max(0, ...longTasks) > 1000) throw new Error(`the page froze: main-thread tasks of ${longTasks.map(Math.round).join(", ")} ms`);
});

/** A PNG of `width` x `height` RGB pixels (a gradient), encoded here: huge images are quick to
 * make and slow to decode. */
function gradientPng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.alloc(1 + 3 * width);
  for (let x = 0; x < width; x++) row.set([x & 255, (x >> 3) & 255, 128], 1 + 3 * x);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

await check("stop-running-analysis", async (page) => {
  // A photo large enough that its analysis (decoding, mostly) runs for seconds: once to the end,
  // then stopped half a second in. Stop must act at once, and the engine must work afterwards.
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  const big = { name: "huge.png", type: "image/png", base64: gradientPng(8000, 8000).toString("base64") };
  const started = Date.now();
  await dropFiles(page, "#lab-drop", [big]);
  await page.waitForFunction(() => document.querySelector("#lab-caption")?.textContent === "huge.png", null, { timeout: TIMEOUT });
  await ready(page, "#lab-result");
  const fullSeconds = (Date.now() - started) / 1000;
  await dropFiles(page, "#lab-drop", ["cat.jpg", big, "horse.png"]);
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "running", null, { timeout: TIMEOUT });
  await page.click("#lab-stop", { timeout: 5000 });
  const clicked = Date.now();
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "cancelled", null, { timeout: TIMEOUT });
  const stopSeconds = (Date.now() - clicked) / 1000;
  // The queue goes on with the next image, on the restarted engine.
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(3)")?.dataset.state === "done", null, { timeout: TIMEOUT });
  await checkLab(page);
  timings["stop-running-analysis"] = { full_analysis_s: fullSeconds, stopped_after_s: stopSeconds };
  if (fullSeconds < 1.5) throw new Error(`the large image took only ${fullSeconds} s: the stop is not tested`);
  if (stopSeconds > 1) throw new Error(`the stop took ${stopSeconds} s (the analysis takes ${fullSeconds} s)`);
});

await check("neuron-deep-link", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "main");
  await ready(page, "#neuron-card");
  const title = await page.$eval("#card-title", (e) => e.textContent);
  const bars = await page.$$eval("#neuron-card .word-bars li", (items) => items.length);
  if (title !== "Layer 1, neuron 4" || bars < 1) throw new Error(`card “${title}” with ${bars} words`);
  await page.waitForFunction(() => /drawn/.test(document.querySelector("#neuron-card .map-status")?.textContent ?? ""), null, { timeout: TIMEOUT });
  const maps = await overlayStats(page, "#neuron-card .top-images canvas");
  if (maps.opaque === 0) throw new Error("no activation map over the top images");
  await page.click("#neuron-next");
  await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 5", null, { timeout: TIMEOUT });
});

await check("search", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "#neuron-card");
  const word = await page.$eval("#neuron-card .word-bars li a", (a) => a.textContent);
  await page.fill("#search-input", word);
  await page.click("#search-form button[type=submit]");
  await ready(page, "#search-result");
  const text = await page.$eval("#search-result", (e) => e.textContent);
  if (!text.includes(`decomposition holds “${word}”`) || !text.includes("L1/N4")) throw new Error(`search for ${word}: ${text.slice(0, 300)}`);
  // Free text needed the text tower: it was downloaded now.
  const tower = await page.$eval("#downloads li[data-file='text tower']", (e) => e.dataset.source).catch(() => null);
  if (tower !== "network" && tower !== "cache") throw new Error(`text tower: ${tower}`);
});

await check("adversarial-miner", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/miner`);
  await ready(page, "main");
  await ready(page, "#miner-result");
  const rows = await page.$$eval("#miner-result tbody tr", (items) => items.length);
  const descriptions = await page.$$eval("#miner-result .description", (items) => items.map((item) => item.textContent));
  if (rows < 1 || descriptions.length < 1) throw new Error(`${rows} words, ${descriptions.length} descriptions`);
  await page.setInputFiles("#miner-file", [join(www, "samples", "cat.jpg"), join(www, "samples", "coffee.jpg")]);
  await page.waitForFunction(() => /Success rate: \d+ of 2/.test(document.querySelector("#miner-summary")?.textContent ?? ""), null, { timeout: TIMEOUT });
});

await check("embed-mode", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu&embed=1#/neuron/2/17`);
  await ready(page, "#neuron-card");
  if (await page.isVisible(".site-header")) throw new Error("the header shows in embed mode");
});

await check("broken-weights", async (page) => {
  await page.goto(`${base}/index.html?weights=models/missing.safetensors&backend=cpu`);
  const { status: s, text } = await status(page, "main");
  if (s !== "error") throw new Error(`status ${s}, expected error`);
  if (!/404|missing|reach/i.test(text)) throw new Error(`the error does not say what is wrong: ${text.slice(0, 300)}`);
});

await check("wrong-files", async (page) => {
  // An HTML page as weights, then the other layout's weights with this bundle (another sha256).
  await page.goto(`${base}/index.html?weights=index.html&config=models/tiny/config.json&bundle=models/tiny/bundle/&backend=cpu`);
  const html = await status(page, "main");
  if (html.status !== "error" || !/HTML page/.test(html.text)) throw new Error(`weights=index.html: ${html.status}: ${html.text.slice(0, 300)}`);
  await page.goto(`${base}/index.html?weights=models/tiny/model-hf.safetensors&config=models/tiny/config.json&bundle=models/tiny/bundle/&backend=cpu`);
  const mismatch = await status(page, "main");
  if (mismatch.status !== "error" || !/mismatch/.test(mismatch.text)) throw new Error(`mismatched bundle: ${mismatch.status}: ${mismatch.text.slice(0, 300)}`);
  await page.goto(`${base}/index.html?weights=models/tiny/model-hf.safetensors&config=models/tiny/config.json&bundle=models/missing/&backend=cpu`);
  const missing = await status(page, "main");
  if (missing.status !== "error" || !/404/.test(missing.text)) throw new Error(`missing bundle: ${missing.status}: ${missing.text.slice(0, 300)}`);
});

await check("second-visit-from-cache", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await page.reload();
  await ready(page, "main");
  const sources = await page.$$eval("#downloads li", (items) => Object.fromEntries(items.map((item) => [item.dataset.file, item.dataset.source])));
  if (sources["image tower"] !== "cache" || sources.bundle !== "cache") throw new Error(`second visit: ${JSON.stringify(sources)}`);
});

await check("local-files", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  const root = join(www, "..");
  await page.click("#source-panel summary");
  // The model alone (the other layout): ready, and the page says the lens needs a bundle.
  await page.setInputFiles("#weights-file", join(root, "tests/fixtures/tiny-a/model-hf.safetensors"));
  await page.setInputFiles("#config-file", join(root, "tests/fixtures/tiny-a/config.json"));
  await page.click("#file-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#weights-source")?.textContent?.startsWith("local:"), null, { timeout: TIMEOUT });
  await ready(page, "main");
  if (!/No bundle/.test(await page.$eval("#status", (e) => e.textContent))) throw new Error("no word of the missing bundle");
  // The model with its bundle's two files: the lab works again.
  await page.setInputFiles("#weights-file", join(root, "tests/fixtures/tiny-a/model-openai.safetensors"));
  await page.setInputFiles("#bundle-files", [join(root, "www/generated/tiny-bundle/manifest.json"), join(root, "www/generated/tiny-bundle/lens.safetensors")]);
  await page.setInputFiles("#config-file", []);
  await page.click("#file-form button[type=submit]");
  await page.waitForFunction(() => /manifest/.test(document.querySelector("#bundle-source")?.textContent ?? ""), null, { timeout: TIMEOUT });
  await ready(page, "main");
  await checkLab(page);
  const source = await page.$eval("#downloads li[data-file=bundle]", (e) => e.dataset.source);
  if (source !== "local") throw new Error(`bundle source ${source}`);
});

await check("benchmark-page-cpu", async (page) => {
  // ViT-B/32 with random weights and a synthetic bundle of the paper's sizes, on flex in wasm,
  // and the matrix-product probe (3 products at batch 1 and 8, a table row each).
  await page.goto(`${base}/bench.html?shape=ViT-B/32&backend=cpu&batch=1&runs=1&analysis=1&probe=1&autorun=1`);
  await page.waitForFunction(() => document.body.dataset.done === "1", null, { timeout: TIMEOUT });
  const status = await page.$eval("main", (e) => e.dataset.status);
  const result = JSON.parse(await page.$eval("#result", (e) => e.textContent));
  if (status !== "done" || !(result.analysis?.analysis_ms_per_image > 0) || !(result.analysis?.segmentation_ms > 0)) throw new Error(`bench: ${status}: ${JSON.stringify(result).slice(0, 400)}`);
  const { threads } = await expectedThreads(page);
  if (result.threads !== threads || result.matmul?.threads !== threads) throw new Error(`bench ran on ${result.threads} threads, not ${threads}`);
  // (each shape twice on the CPU: burn's matmul and the packed kernel the forward uses)
  const products = result.matmul?.timings ?? [];
  const shapes = products.map((t) => `${t.kernel}:${t.m}x${t.k}x${t.n}`).join(" ");
  const expected = ["50x768x2304", "50x768x3072", "50x3072x768", "400x768x2304", "400x768x3072", "400x3072x768"].flatMap((s) => [`matmul:${s}`, `packed:${s}`]).join(" ");
  if (shapes !== expected || !products.every((t) => t.gflops > 0)) throw new Error(`probe: ${JSON.stringify(result.matmul)}`);
  const rows = await page.$$eval("#matmul tbody tr", (r) => r.length);
  if (rows !== 12) throw new Error(`the probe's table has ${rows} rows, not 12`);
  // ... and one block's eleven steps, the whole block last.
  const steps = (result.steps ?? []).map((s) => s.step);
  // (each step timed for at least 20 ms, so even a layer norm reads above the clock's 0.1 ms grain)
  if (steps.length !== 11 || steps[10] !== "whole block" || !result.steps.every((s) => s.ms > 0)) throw new Error(`steps: ${JSON.stringify(result.steps)}`);
  const stepRows = await page.$$eval("#steps tbody tr", (r) => r.length);
  if (stepRows !== 11) throw new Error(`the steps table has ${stepRows} rows, not 11`);
  timings["bench-vit-b-32-cpu"] = result;
});

await check("phone-layout", async (page) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the page is ${overflow} px wider than a phone's screen`);
});

await check("neuron-card", async (page) => {
  await page.goto(`${base}/card.html?layer=1&neuron=4`);
  const { status: s } = await status(page, "clip-lens-neuron");
  if (s !== "ready") throw new Error(`card status ${s}`);
  const bars = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.querySelectorAll("li").length ?? 0);
  if (bars < 1) throw new Error("the card shows no words");
});

await check("neuron-card-error", async (page) => {
  await page.goto(`${base}/card.html?layer=1&neuron=99999`);
  const { status: s, text } = await status(page, "clip-lens-neuron");
  const message = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.textContent ?? "");
  if (s !== "error" || !message.includes("out of range")) throw new Error(`status ${s}: ${message || text}`);
});

await check("one-thread", async (page) => {
  // ?threads=1: the single-threaded module, and the page says why.
  await page.goto(`${base}/index.html?backend=cpu&threads=1`);
  await ready(page, "main");
  const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
  if (!shown.startsWith("CPU, 1 thread: one thread was asked for")) throw new Error(`the page says “${shown}”`);
  await checkLab(page);
});

await check("service-worker-isolation", async (page) => {
  // A host without COOP/COEP: the page registers its service worker, reloads once under it and
  // is then cross-origin isolated, with the threaded module.
  await page.goto(`http://127.0.0.1:${plainPort}/index.html?backend=cpu`);
  await ready(page, "main");
  const state = await page.evaluate(() => ({ isolated: globalThis.crossOriginIsolated, controlled: navigator.serviceWorker.controller !== null }));
  if (!state.isolated || !state.controlled) throw new Error(`after the service worker: ${JSON.stringify(state)}`);
  await checkCpuThreads(page);
  await checkLab(page);
});

await check("embedded-on-another-origin", async (page) => {
  // A page on another origin, itself cross-origin isolated (COEP require-corp, the strictest
  // embedder), shows the neuron card from this site and the explorer in an iframe.
  const hostPage = `<!doctype html><meta charset="utf-8"><title>A blog post</title>
<script type="module" src="${base}/neuron-card.js"></script>
<clip-lens-neuron bundle="${base}/models/tiny/bundle" layer="1" neuron="4"></clip-lens-neuron>
<iframe src="${base}/index.html?embed=1&backend=cpu#/neuron/1/4" width="720" height="900" title="clip-lens"></iframe>`;
  const host = createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" });
    response.end(hostPage);
  });
  await new Promise((resolve) => host.listen(port + 2, "127.0.0.1", resolve));
  try {
    await page.goto(`http://127.0.0.1:${port + 2}/post.html`);
    const { status: s, text } = await status(page, "clip-lens-neuron");
    const words = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.querySelectorAll("li").length ?? 0);
    if (s !== "ready" || words < 1) throw new Error(`card: ${s} with ${words} words: ${text.slice(0, 300)}`);
    // Its thumbnails (images from this site under the embedder's require-corp: CORP admits them).
    const thumbnailsLoaded = () => {
      const images = [...(document.querySelector("clip-lens-neuron")?.shadowRoot?.querySelectorAll("img") ?? [])];
      return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
    };
    await page.waitForFunction(thumbnailsLoaded, null, { timeout: 30_000 }).catch(() => {
      throw new Error("the card's thumbnails did not load");
    });
    const frame = page.frames().find((f) => f.url().startsWith(`${base}/index.html`));
    if (!frame) throw new Error("the iframe did not load");
    await ready(frame, "#neuron-card");
  } finally {
    host.close();
  }
});

await browser.close();
server.kill();
plainServer.kill();
await writeFile(join(out, "timings.json"), JSON.stringify(timings, null, 2));
console.log(`timings: ${JSON.stringify(timings)}`);
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${(r.ms / 1000).toFixed(1)} s)${r.error ? `: ${r.error}` : ""}`);
console.log(`screenshots: ${out}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

// End-to-end tests of the built site (www/dist) in Debian's Chromium, driven by playwright-core:
// the demo loads to `data-status="ready"` on WebGPU and on the CPU and analyses the sample
// (classes, concepts, a heatmap that is not blank); a backend switch and a lost GPU device
// move to the CPU; ?image=&concept= links, the image queue (50 dropped images, cancel; no
// freezing or leaks), stopping a running analysis, neuron deep
// links with activation maps, search, the adversarial miner, embed mode, a phone-sized screen;
// a broken weights address shows an error (not a blank page); the embeddable neuron card
// renders from the bundle alone (and reports a bad neuron); issue 15's explorer: a card's
// histogram (and the analysed image's norm on it), ablations in the lab, lists of neurons (and
// bad lists), downloads (JSON, CSV, PNG), word pages, the new controls from the keyboard, and
// a format-2 bundle's cards without histograms. Screenshots go to $E2E_OUT (default ../target/e2e).
// Usage: node e2e.mjs (after `npm run build`; CHROMIUM=/path/to/chromium to override,
// E2E_ONLY=image-queue,search to run only some checks).

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { copyFile, cp, mkdir, readFile, writeFile } from "node:fs/promises";
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
  const child = spawn(process.execPath, [join(www, "serve.mjs")], {
    env: { ...process.env, ...env, PORT: String(servePort) },
    stdio: ["ignore", "pipe", "inherit"],
  });
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
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // A synthetic camera (a test pattern) for the lab's camera snapshot, without a prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
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
    results.push({
      name,
      ok: false,
      ms: Date.now() - started,
      error: `${error.message}${errors.length ? ` (page errors: ${errors.join("; ")})` : ""}`,
    });
  } finally {
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true }).catch(() => {});
    await page.close();
  }
}

async function status(page, selector) {
  await page.waitForFunction((s) => ["ready", "error"].includes(document.querySelector(s)?.dataset.status ?? ""), selector, {
    timeout: TIMEOUT,
  });
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
  await page.waitForFunction(() => /^camera snapshot/.test(document.querySelector("#lab-caption")?.textContent ?? ""), null, {
    timeout: TIMEOUT,
  });
  await checkLab(page);
});

/** Drops files (names in www/samples, or {name, type, base64}) on `selector` as a drag and drop
 * from the desktop does: dragenter, dragover and drop events carrying them. */
async function dropFiles(page, selector, files) {
  await page.evaluate(
    async ({ selector, files }) => {
      const transfer = new DataTransfer();
      for (const file of files) {
        const blob =
          typeof file === "string"
            ? await (await fetch(`samples/${file}`)).blob()
            : new Blob([Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))], { type: file.type });
        transfer.items.add(new File([blob], typeof file === "string" ? file : file.name, { type: blob.type }));
      }
      const target = document.querySelector(selector);
      for (const type of ["dragenter", "dragover", "drop"])
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
    },
    { selector, files },
  );
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
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((entry) => entry.duration))).observe({
      type: "longtask",
      buffered: true,
    });
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
  await page.waitForFunction(
    () => [...document.querySelectorAll(".queue-item")].every((item) => !["queued", "running"].includes(item.dataset.state)),
    null,
    { timeout: TIMEOUT },
  );
  const states = await queueStates(page);
  const count = (state) => states.filter((s) => s === state).length;
  if (states.length !== 50 || count("cancelled") === 0 || count("done") === 0 || count("error") > 0)
    throw new Error(`queue states: ${JSON.stringify(states)}`);
  await ready(page, "#lab-result");
  const first = await memory(page, cdp);
  // A new batch once that one is over: a new queue, analysed to the end.
  const started = Date.now();
  await dropFiles(page, "#lab-drop", names);
  await page.waitForFunction(
    () => {
      const items = [...document.querySelectorAll(".queue-item")];
      return items.length === 50 && items.every((item) => item.dataset.state === "done");
    },
    null,
    { timeout: TIMEOUT },
  );
  await ready(page, "#lab-result");
  const seconds = (Date.now() - started) / 1000;
  const second = await memory(page, cdp);
  const longTasks = await page.evaluate(() => window.__longTasks);
  timings["image-queue"] = {
    first_batch: first,
    after_50_more: second,
    seconds_for_50: seconds,
    main_thread_long_tasks: longTasks.length,
    longest_task_ms: Math.max(0, ...longTasks),
  };
  // The queue keeps one object URL per image (to show it again) and the shown image's.
  if (second.live_object_urls > 51)
    throw new Error(`${second.live_object_urls} live object URLs after two batches of 50: the first batch's leaked`);
  if (second.js_heap_mb - first.js_heap_mb > 24)
    throw new Error(`the JS heap grew by ${(second.js_heap_mb - first.js_heap_mb).toFixed(1)} MB over 50 images`);
  if (!(second.wasm_mb > 0) || second.wasm_mb - first.wasm_mb > 16)
    throw new Error(`wasm memory ${first.wasm_mb} MB, then ${second.wasm_mb} MB after 50 images`);
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
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "running", null, {
    timeout: TIMEOUT,
  });
  await page.click("#lab-stop", { timeout: 5000 });
  const clicked = Date.now();
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "cancelled", null, {
    timeout: TIMEOUT,
  });
  const stopSeconds = (Date.now() - clicked) / 1000;
  // The queue goes on with the next image, on the restarted engine.
  await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(3)")?.dataset.state === "done", null, {
    timeout: TIMEOUT,
  });
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
  await page.waitForFunction(() => /drawn/.test(document.querySelector("#neuron-card .map-status")?.textContent ?? ""), null, {
    timeout: TIMEOUT,
  });
  const maps = await overlayStats(page, "#neuron-card .top-images canvas");
  if (maps.opaque === 0) throw new Error("no activation map over the top images");
  await page.click("#neuron-next");
  await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 5", null, { timeout: TIMEOUT });
  // A malformed address: a message in the card, not a blank view.
  await page.evaluate(() => {
    location.hash = "#/neuron/abc/4";
  });
  await page.waitForFunction(() => document.querySelector("#neuron-card")?.dataset.status === "error", null, { timeout: TIMEOUT });
  const message = await page.$eval("#neuron-card", (e) => e.textContent);
  if (!message.includes("names no neuron")) throw new Error(`#/neuron/abc/4 says: ${message}`);
});

await check("search", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "#neuron-card");
  const word = await page.$eval("#neuron-card .word-bars li a", (a) => a.textContent);
  await page.fill("#search-input", word);
  await page.click("#search-form button[type=submit]");
  await ready(page, "#search-result");
  const text = await page.$eval("#search-result", (e) => e.textContent);
  if (!text.includes(`decomposition holds “${word}”`) || !text.includes("L1/N4"))
    throw new Error(`search for ${word}: ${text.slice(0, 300)}`);
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
  await page.waitForFunction(() => /Success rate: \d+ of 2/.test(document.querySelector("#miner-summary")?.textContent ?? ""), null, {
    timeout: TIMEOUT,
  });
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
  if (html.status !== "error" || !/HTML page/.test(html.text))
    throw new Error(`weights=index.html: ${html.status}: ${html.text.slice(0, 300)}`);
  await page.goto(
    `${base}/index.html?weights=models/tiny/model-hf.safetensors&config=models/tiny/config.json&bundle=models/tiny/bundle/&backend=cpu`,
  );
  const mismatch = await status(page, "main");
  if (mismatch.status !== "error" || !/mismatch/.test(mismatch.text))
    throw new Error(`mismatched bundle: ${mismatch.status}: ${mismatch.text.slice(0, 300)}`);
  await page.goto(
    `${base}/index.html?weights=models/tiny/model-hf.safetensors&config=models/tiny/config.json&bundle=models/missing/&backend=cpu`,
  );
  const missing = await status(page, "main");
  if (missing.status !== "error" || !/404/.test(missing.text))
    throw new Error(`missing bundle: ${missing.status}: ${missing.text.slice(0, 300)}`);
});

await check("second-visit-from-cache", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await page.reload();
  await ready(page, "main");
  const sources = await page.$$eval("#downloads li", (items) =>
    Object.fromEntries(items.map((item) => [item.dataset.file, item.dataset.source])),
  );
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
  await page.waitForFunction(() => document.querySelector("#weights-source")?.textContent?.startsWith("local:"), null, {
    timeout: TIMEOUT,
  });
  await ready(page, "main");
  if (!/No bundle/.test(await page.$eval("#status", (e) => e.textContent))) throw new Error("no word of the missing bundle");
  // The model with its bundle's two files: the lab works again.
  await page.setInputFiles("#weights-file", join(root, "tests/fixtures/tiny-a/model-openai.safetensors"));
  await page.setInputFiles("#bundle-files", [
    join(root, "www/generated/tiny-bundle/manifest.json"),
    join(root, "www/generated/tiny-bundle/lens.safetensors"),
  ]);
  await page.setInputFiles("#config-file", []);
  await page.click("#file-form button[type=submit]");
  await page.waitForFunction(() => /manifest/.test(document.querySelector("#bundle-source")?.textContent ?? ""), null, {
    timeout: TIMEOUT,
  });
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
  if (status !== "done" || !(result.analysis?.analysis_ms_per_image > 0) || !(result.analysis?.segmentation_ms > 0))
    throw new Error(`bench: ${status}: ${JSON.stringify(result).slice(0, 400)}`);
  const { threads } = await expectedThreads(page);
  if (result.threads !== threads || result.matmul?.threads !== threads)
    throw new Error(`bench ran on ${result.threads} threads, not ${threads}`);
  // (each shape twice on the CPU: burn's matmul and the packed kernel the forward uses)
  const products = result.matmul?.timings ?? [];
  const shapes = products.map((t) => `${t.kernel}:${t.m}x${t.k}x${t.n}`).join(" ");
  const expected = ["50x768x2304", "50x768x3072", "50x3072x768", "400x768x2304", "400x768x3072", "400x3072x768"]
    .flatMap((s) => [`matmul:${s}`, `packed:${s}`])
    .join(" ");
  if (shapes !== expected || !products.every((t) => t.gflops > 0)) throw new Error(`probe: ${JSON.stringify(result.matmul)}`);
  const rows = await page.$$eval("#matmul tbody tr", (r) => r.length);
  if (rows !== 12) throw new Error(`the probe's table has ${rows} rows, not 12`);
  // ... and one block's eleven steps, the whole block last.
  const steps = (result.steps ?? []).map((s) => s.step);
  // (each step timed for at least 20 ms, so even a layer norm reads above the clock's 0.1 ms grain)
  if (steps.length !== 11 || steps[10] !== "whole block" || !result.steps.every((s) => s.ms > 0))
    throw new Error(`steps: ${JSON.stringify(result.steps)}`);
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
  const state = await page.evaluate(() => ({
    isolated: globalThis.crossOriginIsolated,
    controlled: navigator.serviceWorker.controller !== null,
  }));
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
    response.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
    });
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

// ---- Issue 15: distributions, ablation, lists, exports, word pages ----

/** Moves to the route `hash` in the loaded page (a hashchange, no reload). */
async function go(page, hash) {
  await page.evaluate((h) => (location.hash = h), hash);
}

/** The first word of the card of `layer`/`neuron` (a word of the demo's dictionary). */
async function cardWord(page, layer, neuron) {
  await go(page, `#/neuron/${layer}/${neuron}`);
  await page.waitForFunction((t) => document.querySelector("#card-title")?.textContent === t, `Layer ${layer}, neuron ${neuron}`, {
    timeout: TIMEOUT,
  });
  await ready(page, "#neuron-card");
  return page.$eval("#neuron-card .word-bars li a", (a) => a.textContent);
}

/** Opens the lab's first list of significant neurons (closed when a layer has more than 12). */
async function openNeuronLists(page) {
  await page.$eval("#lab-neurons details", (list) => (list.open = true));
}

/** Throws unless the card's distribution section has its chart (role img, with a summary),
 * 32 bars, the threshold marker, the caption and the percentiles; returns the markers. */
async function checkHistogram(page, scope) {
  const found = await page.$eval(scope, (root) => {
    const chart = root.querySelector(".distribution svg.histogram");
    return {
      role: chart?.getAttribute("role") ?? null,
      label: chart?.getAttribute("aria-label") ?? "",
      bars: root.querySelectorAll(".distribution .hist-bar").length,
      marks: [...root.querySelectorAll(".distribution .hist-mark")].map((g) => ({
        kind: g.classList.contains("threshold") ? "threshold" : "analysed",
        value: Number(g.dataset.value),
      })),
      caption: root.querySelector(".distribution .histogram-caption")?.textContent ?? "",
      percentiles: [...root.querySelectorAll(".distribution .percentiles td")].map((td) => td.textContent),
    };
  });
  if (found.role !== "img" || !/centred norm over \d+ images/.test(found.label)) throw new Error(`chart: ${JSON.stringify(found)}`);
  if (found.bars !== 32 || !found.marks.some((m) => m.kind === "threshold")) throw new Error(`bars and marks: ${JSON.stringify(found)}`);
  if (!/^\d+ of \d+ images \(\d+\.\d\d%\) above the threshold/.test(found.caption) || found.percentiles.length !== 5)
    throw new Error(`caption and percentiles: ${JSON.stringify(found)}`);
  return found.marks;
}

await check("card-histogram", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "#neuron-card");
  const marks = await checkHistogram(page, "#neuron-card");
  // Nothing was analysed: no image is marked.
  if (marks.some((m) => m.kind === "analysed")) throw new Error(`an image is marked before any analysis: ${JSON.stringify(marks)}`);
});

await check("lab-histogram-marks-image", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await checkLab(page);
  await openNeuronLists(page);
  const row = await page.$eval("#lab-neurons .significant-neuron", (li) => ({
    key: li.dataset.neuron,
    norm: Number(/ (\d+\.\d+) >/.exec(li.textContent)?.[1]),
  }));
  await page.click(`.significant-neuron[data-neuron="${row.key}"] .distribution-toggle`);
  await ready(page, `.significant-neuron[data-neuron="${row.key}"] .neuron-distribution`);
  const marks = await checkHistogram(page, `.significant-neuron[data-neuron="${row.key}"]`);
  const analysed = marks.find((m) => m.kind === "analysed");
  if (!analysed || Math.abs(analysed.value - row.norm) > 0.01 + 0.01 * row.norm)
    throw new Error(`neuron ${row.key} (norm ${row.norm}): marks ${JSON.stringify(marks)}`);
  const threshold = marks.find((m) => m.kind === "threshold");
  if (!(analysed.value > threshold.value))
    throw new Error(`a significant neuron's norm ${analysed.value} is not above its threshold ${threshold.value}`);
  // Its card in the explorer marks the same image.
  const [layer, neuron] = row.key.split(":");
  await go(page, `#/neuron/${layer}/${neuron}`);
  await page.waitForFunction((t) => document.querySelector("#card-title")?.textContent === t, `Layer ${layer}, neuron ${neuron}`, {
    timeout: TIMEOUT,
  });
  await ready(page, "#neuron-card");
  const cardMarks = await checkHistogram(page, "#neuron-card");
  if (!cardMarks.some((m) => m.kind === "analysed" && Math.abs(m.value - analysed.value) < 1e-6))
    throw new Error(`the card's marks: ${JSON.stringify(cardMarks)}`);
  await go(page, "#/lab"); // the screenshot: the lab with the distribution open
});

/** Runs an ablation by clicking `selector`; returns what the result shows. */
async function ablate(page, selector) {
  await page.click(selector);
  await ready(page, "#ablation-result");
  return page.$eval("#ablation-result", (root) => {
    const side = (i) => {
      const section = root.querySelectorAll(".ablation-side")[i];
      const lists = section ? section.querySelectorAll("ol") : [];
      return {
        classes: [...(lists[0]?.querySelectorAll("li") ?? [])].map((li) => li.textContent),
        words: [...(lists[1]?.querySelectorAll("li") ?? [])].map((li) => li.textContent),
      };
    };
    return {
      summary: root.querySelector(".ablation-summary")?.textContent ?? "",
      shift: Number(root.querySelector(".shift")?.textContent),
      before: side(0),
      after: side(1),
    };
  });
}

/** Throws unless an ablation's result shows both sides and changed something. */
function expectChange(result, what) {
  const same = JSON.stringify(result.before) === JSON.stringify(result.after);
  if (result.before.classes.length < 1 || result.after.classes.length < 1)
    throw new Error(`${what}: no classes: ${JSON.stringify(result)}`);
  if (same && !(result.shift > 0)) throw new Error(`${what}: nothing changed: ${JSON.stringify(result)}`);
}

await check("ablation", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await checkLab(page);
  await openNeuronLists(page);
  // One significant neuron.
  const key = await page.$eval("#lab-neurons .significant-neuron", (li) => li.dataset.neuron);
  const one = await ablate(page, `.ablate-one[data-neuron="${key}"]`);
  if (!one.summary.includes(key) || !(one.shift > 0)) throw new Error(`one neuron: ${JSON.stringify(one)}`);
  // The deepest layer's significant neurons, then its insignificant ones, then rank one.
  const significant = await ablate(page, "#ablate-layer-form button[data-kind=significant]");
  expectChange(significant, "significant");
  const insignificant = await ablate(page, "#ablate-layer-form button[data-kind=insignificant]");
  expectChange(insignificant, "insignificant");
  const rankOne = await ablate(page, "#ablate-layer-form button[data-kind=rank-one]");
  if (!/rank/i.test(rankOne.summary)) throw new Error(`rank one: ${JSON.stringify(rankOne)}`);
  // A ticked set: the field lists the ticked neurons.
  const boxes = await page.$$eval(".ablate-select", (items) => items.slice(0, 2).map((box) => box.dataset.neuron));
  for (const neuron of boxes) await page.check(`.ablate-select[data-neuron="${neuron}"]`);
  const typed = await page.inputValue("#ablate-neurons");
  if (typed !== boxes.join(",")) throw new Error(`ticked ${boxes.join(",")}, the field says “${typed}”`);
  const set = await ablate(page, "#ablate-neurons-form button[type=submit]");
  if (!set.summary.includes(`${boxes.length} neuron`)) throw new Error(`the set: ${JSON.stringify(set)}`);
  // A bad set: the engine's message, in the page.
  await page.fill("#ablate-neurons", "99:1");
  await page.click("#ablate-neurons-form button[type=submit]");
  const bad = await status(page, "#ablation-result");
  if (bad.status !== "error" || !bad.text.includes("99")) throw new Error(`bad set: ${JSON.stringify(bad)}`);
  await ablate(page, "#ablate-layer-form button[data-kind=significant]"); // the screenshot shows a result
});

await check("list", async (page) => {
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "#neuron-card");
  // Neurons that share a word: those of a word's page.
  const word = await cardWord(page, 1, 4);
  await go(page, `#/word/${encodeURIComponent(word)}`);
  await ready(page, "#word-result");
  const keys = (await page.$$eval(".word-page-neuron", (items) => items.map((li) => li.dataset.neuron))).slice(0, 3);
  if (keys.length < 2) keys.push(keys[0] === "0:1" ? "0:2" : "0:1");
  await go(page, `#/list/${keys.join(",")}`);
  await ready(page, "#list-cards");
  const cards = await page.$$eval(".compact-card", (items) =>
    items.map((card) => ({
      key: card.dataset.neuron,
      box: card.getBoundingClientRect().toJSON(),
      histogram: card.querySelector("svg.histogram") !== null,
      thumbnails: card.querySelectorAll(".thumb-strip img").length,
      shared: card.querySelectorAll(".score-row.shared").length,
    })),
  );
  if (cards.map((c) => c.key).join(",") !== keys.join(",")) throw new Error(`cards ${cards.map((c) => c.key)} for ${keys}`);
  if (!(Math.abs(cards[0].box.y - cards[1].box.y) < 2 && cards[1].box.x > cards[0].box.x))
    throw new Error(`not side by side: ${JSON.stringify(cards.map((c) => c.box))}`);
  if (!cards.every((c) => c.histogram && c.thumbnails > 0)) throw new Error(`compact cards: ${JSON.stringify(cards)}`);
  const shared = await page.$$eval(".shared-summary .word-link.shared", (links) => links.map((a) => a.textContent));
  if (keys.length >= 2 && cards.filter((c) => c.shared > 0).length < 2 && shared.length > 0)
    throw new Error(`shared words ${shared} are not highlighted in the cards`);
  if (!shared.includes(word) && (await page.$$eval(".word-page-neuron", (items) => items.length)) >= 2)
    throw new Error(`“${word}” is not among the shared words ${shared}`);
  // Copy link: the clipboard, then the field where the clipboard is refused.
  const url = await page.evaluate(() => location.href);
  await page.click("#list-copy");
  await page.waitForFunction(() => /copied/i.test(document.querySelector("#list-copy-status")?.textContent ?? ""), null, {
    timeout: 10_000,
  });
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  if (copied !== url) throw new Error(`copied “${copied}”, expected ${url}`);
  await page.evaluate(() => (navigator.clipboard.writeText = () => Promise.reject(new Error("refused"))));
  await page.click("#list-copy");
  await page.waitForSelector("#list-copy-field:not([hidden])", { timeout: 10_000 });
  const field = await page.inputValue("#list-copy-field");
  if (field !== url) throw new Error(`the fallback field says “${field}”, expected ${url}`);
  // "Add to list" on a card: the header counts it and links to it.
  await go(page, "#/neuron/2/17");
  await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 2, neuron 17", null, { timeout: TIMEOUT });
  await ready(page, "#neuron-card");
  await page.click("#neuron-card .list-button");
  if ((await page.getAttribute("#neuron-card .list-button", "aria-pressed")) !== "true")
    throw new Error("the card's list button is not pressed");
  if ((await page.textContent("#list-count")) !== "1") throw new Error(`the header counts ${await page.textContent("#list-count")}`);
  await page.click("#list-link");
  await ready(page, "#list-cards");
  const listed = await page.$$eval(".compact-card", (items) => items.map((card) => card.dataset.neuron));
  if (listed.join(",") !== "2:17") throw new Error(`my list shows ${listed}`);
  // It is kept: a reload shows the same list.
  await page.reload();
  await ready(page, "#list-cards");
  if ((await page.textContent("#list-count")) !== "1") throw new Error("the list was not kept");
  await go(page, `#/list/${keys.join(",")}`); // the screenshot: the cards side by side
  await ready(page, "#list-cards");
});

await check("list-bad", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/list/0:1,99:2`);
  const unknown = await status(page, "#list-cards");
  if (unknown.status !== "error" || !unknown.text.includes("99")) throw new Error(`#/list/0:1,99:2: ${JSON.stringify(unknown)}`);
  await go(page, "#/list/0:99999");
  await page.waitForFunction(() => /99999/.test(document.querySelector("#list-cards")?.textContent ?? ""), null, { timeout: TIMEOUT });
  const range = await status(page, "#list-cards");
  if (range.status !== "error") throw new Error(`#/list/0:99999: ${JSON.stringify(range)}`);
  await go(page, "#/list/garbage");
  await page.waitForFunction(() => /garbage/.test(document.querySelector("#list-cards")?.textContent ?? ""), null, { timeout: TIMEOUT });
  const garbage = await status(page, "#list-cards");
  if (garbage.status !== "error") throw new Error(`#/list/garbage: ${JSON.stringify(garbage)}`);
  if ((await page.$eval("main", (e) => e.dataset.status)) !== "ready") throw new Error("a bad list stopped the page");
});

/** Clicks `selector` and returns the download it starts: its file name and bytes. */
async function download(page, selector) {
  const [started] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.click(selector)]);
  const path = await started.path();
  return { name: started.suggestedFilename(), bytes: await readFile(path) };
}

await check("export", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await checkLab(page);
  await ablate(page, "#ablate-layer-form button[data-kind=significant]");
  // The analysis, with its ablation.
  const json = await download(page, "#lab-export button:nth-child(1)");
  const analysis = JSON.parse(json.bytes.toString("utf8"));
  if (
    json.name !== "analysis.json" ||
    !Array.isArray(analysis.analysis?.classes) ||
    analysis.ablations?.length !== 1 ||
    !analysis.ablations[0].after
  )
    throw new Error(`${json.name}: ${json.bytes.toString("utf8").slice(0, 300)}`);
  const csv = await download(page, "#lab-export button:nth-child(2)");
  const csvLines = csv.bytes.toString("utf8").split("\n");
  if (csv.name !== "analysis.csv" || csvLines[0] !== "section,variant,layer,neuron,rank,label,value" || csvLines.length < 10)
    throw new Error(`${csv.name}: ${csvLines.slice(0, 3).join(" / ")}`);
  const png = await download(page, "#lab-export button:nth-child(3)");
  const concept = await page.$eval("#lab-result", (e) => e.dataset.concept);
  const expectedPng = `heatmap-${concept
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "")}.png`;
  if (
    png.name !== expectedPng ||
    !png.bytes.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])) ||
    png.bytes.length < 200
  )
    throw new Error(`${png.name} (expected ${expectedPng}), ${png.bytes.length} bytes`);
  // A card: JSON, CSV, and an activation map as PNG.
  await go(page, "#/neuron/1/4");
  await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 4", null, { timeout: TIMEOUT });
  await ready(page, "#neuron-card");
  const card = await download(page, "#neuron-card .card-actions .download-button >> nth=0");
  const parsed = JSON.parse(card.bytes.toString("utf8"));
  const keys = ["layer", "neuron", "words", "threshold", "top_images", "classes", "distribution", "analysed_norm"];
  if (card.name !== "neuron-1-4.json" || !keys.every((k) => k in parsed) || parsed.layer !== 1 || parsed.neuron !== 4)
    throw new Error(`${card.name}: keys ${Object.keys(parsed)}`);
  const cardCsv = await download(page, "#neuron-card .card-actions .download-button >> nth=1");
  const cardLines = cardCsv.bytes.toString("utf8").split("\n");
  if (
    cardCsv.name !== "neuron-1-4.csv" ||
    cardLines[0] !== "layer,neuron,field,index,label,value" ||
    !cardLines.some((l) => l.startsWith("1,4,word,"))
  )
    throw new Error(`${cardCsv.name}: ${cardLines.slice(0, 3).join(" / ")}`);
  await page.waitForFunction(() => /drawn/.test(document.querySelector("#neuron-card .map-status")?.textContent ?? ""), null, {
    timeout: TIMEOUT,
  });
  const map = await download(page, "#neuron-card .top-images .download-button >> nth=0");
  if (!/^heatmap-1-4-image-\d+\.png$/.test(map.name) || !map.bytes.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])))
    throw new Error(`activation map: ${map.name}`);
});

/** Waits for the thumbnails of the word page's first neurons (the later ones load lazily). */
async function firstThumbnailsLoaded(page) {
  await page.waitForFunction(
    () => {
      const images = [...document.querySelectorAll(".word-page-neuron:nth-child(-n+3) .thumb-strip img")];
      return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
    },
    null,
    { timeout: 30_000 },
  );
}

await check("word-page", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
  await ready(page, "#neuron-card");
  // The card's words link to their pages.
  const href = await page.$eval("#neuron-card .word-bars li a", (a) => a.getAttribute("href"));
  const word = await page.$eval("#neuron-card .word-bars li a", (a) => a.textContent);
  if (href !== `#/word/${encodeURIComponent(word)}`) throw new Error(`the word links to ${href}`);
  await page.click("#neuron-card .word-bars li a");
  await ready(page, "#word-result");
  const rows = await page.$$eval(".word-page-neuron", (items) =>
    items.map((li) => ({ key: li.dataset.neuron, text: li.textContent, images: li.querySelectorAll(".thumb-strip img").length })),
  );
  if (!rows.some((r) => r.key === "1:4") || !rows.every((r) => r.images > 0 && /[+−]\d/.test(r.text)))
    throw new Error(`word page of ${word}: ${JSON.stringify(rows)}`);
  await firstThumbnailsLoaded(page);
  // Search results show their neurons' thumbnails too.
  await go(page, `#/search/${encodeURIComponent(word)}`);
  await ready(page, "#search-result");
  await page.waitForSelector("#search-result li[data-layer] .thumb-strip img", { timeout: TIMEOUT });
  // An unknown word: the engine's message.
  await go(page, "#/word/zzqxv%20unknown");
  await page.waitForFunction(() => /zzqxv/.test(document.querySelector("#word-result")?.textContent ?? ""), null, { timeout: TIMEOUT });
  const unknown = await status(page, "#word-result");
  if (unknown.status !== "error" || !/not a word/.test(unknown.text)) throw new Error(`unknown word: ${JSON.stringify(unknown)}`);
  await go(page, `#/word/${encodeURIComponent(word)}`); // the screenshot: the word's page
  await ready(page, "#word-result");
  await firstThumbnailsLoaded(page);
});

/** Presses Tab until `selector` has the focus (at most `max` presses). */
async function tabTo(page, selector, max = 400) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

/** The new controls without an accessible name (aria-label, a <label>, or their text). */
async function unnamedControls(page) {
  return page.$$eval(
    ".ablate-one, .ablate-select, .distribution-toggle, .download-button, .list-button, #ablate-neurons, #ablate-layer, #ablate-layer-form button, #list-spec, #list-copy, #list-copy-field, svg.histogram",
    (items) =>
      items
        .filter((e) => !(e.getAttribute("aria-label") || e.labels?.length || e.textContent.trim()))
        .map((e) => e.outerHTML.slice(0, 120)),
  );
}

await check("keyboard", async (page) => {
  await page.goto(`${base}/index.html?backend=cpu`);
  await ready(page, "main");
  await checkLab(page);
  // Open the first layer's neurons with Enter, tick a neuron with Space, ablate it with Enter,
  // open a distribution with Space.
  await tabTo(page, "#lab-neurons summary");
  await page.keyboard.press("Enter");
  await tabTo(page, ".ablate-select");
  await page.keyboard.press("Space");
  if (!(await page.inputValue("#ablate-neurons"))) throw new Error("Space did not tick the neuron");
  await tabTo(page, ".ablate-one");
  await page.keyboard.press("Enter");
  await ready(page, "#ablation-result");
  await page.focus("#lab-neurons a");
  await tabTo(page, ".distribution-toggle");
  await page.keyboard.press("Space");
  await ready(page, ".neuron-distribution:not([hidden])");
  // The layer's buttons (past the layers' hundreds of neuron rows: from the exports).
  await page.focus("#lab-export button");
  await tabTo(page, "#ablate-layer-form button[data-kind=rank-one]", 20);
  await page.keyboard.press("Enter");
  await ready(page, "#ablation-result");
  if (!/rank/i.test(await page.textContent("#ablation-result .ablation-summary"))) throw new Error("Enter on rank one did not ablate");
  const missing = await unnamedControls(page);
  // A card: add to the list with Enter, download with Enter.
  await go(page, "#/neuron/1/4");
  await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 4", null, { timeout: TIMEOUT });
  await ready(page, "#neuron-card");
  await page.focus("#search-input");
  await tabTo(page, "#neuron-card .list-button");
  await page.keyboard.press("Enter");
  if ((await page.getAttribute("#neuron-card .list-button", "aria-pressed")) !== "true")
    throw new Error("Enter did not add the card to the list");
  await tabTo(page, "#neuron-card .download-button");
  const [file] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.keyboard.press("Enter")]);
  if (file.suggestedFilename() !== "neuron-1-4.json") throw new Error(`Enter downloaded ${file.suggestedFilename()}`);
  // The list view's controls.
  await go(page, "#/list/1:4,1:5");
  await ready(page, "#list-cards");
  missing.push(...(await unnamedControls(page)));
  if (missing.length) throw new Error(`controls without a name: ${missing.join(" | ")}`);
  const histogram = await page.$eval("#list-cards svg.histogram", (svg) => ({
    role: svg.getAttribute("role"),
    label: svg.getAttribute("aria-label"),
  }));
  if (histogram.role !== "img" || !histogram.label) throw new Error(`the histogram has no text alternative: ${JSON.stringify(histogram)}`);
});

await check("old-bundle", async (page) => {
  // The demo bundle as format 2 (no histograms): its manifest rewritten, its tensors as they are.
  const from = join(www, "dist", "models", "tiny", "bundle");
  const to = join(www, "dist", "models", "tiny", "bundle-format2");
  await mkdir(to, { recursive: true });
  const manifest = JSON.parse(await readFile(join(from, "manifest.json"), "utf8"));
  manifest.format_version = 2;
  delete manifest.histogram_bins;
  delete manifest.percentiles;
  await writeFile(join(to, "manifest.json"), JSON.stringify(manifest));
  await copyFile(join(from, "lens.safetensors"), join(to, "lens.safetensors"));
  await cp(join(from, "thumbnails"), join(to, "thumbnails"), { recursive: true });
  await page.goto(`${base}/index.html?backend=cpu&bundle=models/tiny/bundle-format2/#/neuron/1/4`);
  await ready(page, "#neuron-card");
  const message = await page.$eval("#neuron-card .distribution", (e) => e.textContent);
  if (!/format 2\) has no per-neuron histograms/.test(message) || !/clip-lens precompute/.test(message))
    throw new Error(`the card says “${message}”`);
  if (await page.$("#neuron-card svg.histogram")) throw new Error("a format-2 card draws a histogram");
  await go(page, "#/list/1:4,1:5");
  await ready(page, "#list-cards");
  const notes = await page.$$eval(".compact-card .no-histogram", (items) => items.length);
  if (notes !== 2) throw new Error(`${notes} of the list's 2 cards say they have no histogram`);
  await go(page, "#/neuron/1/4");
  await ready(page, "#neuron-card");
});

await browser.close();
server.kill();
plainServer.kill();
await writeFile(join(out, "timings.json"), JSON.stringify(timings, null, 2));
console.log(`timings: ${JSON.stringify(timings)}`);
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${(r.ms / 1000).toFixed(1)} s)${r.error ? `: ${r.error}` : ""}`);
console.log(`screenshots: ${out}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

// What the end-to-end checks share: where the site and the screenshots are, the servers'
// addresses, the timeout, the figures the checks measure, and helpers that wait for the page
// and look at what it shows. run.mjs runs the checks; each view's file (loading.mjs, lab.mjs,
// explorer.mjs, ...) exports its own.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

/** The www directory (the site is built in www/dist). */
export const www = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the screenshots and timings.json go. */
export const out = process.env.E2E_OUT ?? join(www, "..", "target", "e2e");
/** serve.mjs's port; the one above it serves the site without COOP/COEP headers (ISOLATION=0). */
export const port = Number(process.env.E2E_PORT ?? 8765);
export const plainPort = port + 1;
export const base = `http://127.0.0.1:${port}`;
export const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 300_000);
/** Whether the site has its threaded module (CLIP_LENS_PKG_THREADS when building). */
export const threadsBuilt = existsSync(join(www, "dist", "pkg-threads", "clip_lens_bg.wasm"));
/** Figures the checks measure, written to $E2E_OUT/timings.json. */
export const timings = {};

/** A check: its name (E2E_ONLY's, the screenshot's) and what it does with a fresh page. */
export function check(name, run) {
  return { name, run };
}

/** Waits for `selector`'s data-status to be ready or error; returns it and the element's text. */
export async function status(page, selector) {
  await page.waitForFunction((s) => ["ready", "error"].includes(document.querySelector(s)?.dataset.status ?? ""), selector, {
    timeout: TIMEOUT,
  });
  return page.$eval(selector, (element) => ({ status: element.dataset.status, text: element.textContent ?? "" }));
}

/** What the page says of the CPU threads on this machine: one per core, at most 8, where the
 * site has its threaded module. */
export async function expectedThreads(page) {
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = threadsBuilt ? Math.max(1, Math.min(cores, 8)) : 1;
  return { threads, text: threads === 1 ? "1 thread" : `${threads} threads` };
}

/** Throws unless the backend line names the CPU with the expected threads. */
export async function checkCpuThreads(page) {
  const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
  const { text } = await expectedThreads(page);
  if (!shown.startsWith(`CPU, ${text}`)) throw new Error(`the page says the backend is “${shown}”, not the CPU on ${text}`);
}

/** Waits for `selector`'s data-status to be ready or error; throws unless it is ready. */
export async function ready(page, selector) {
  const { status: s, text } = await status(page, selector);
  if (s !== "ready") throw new Error(`${selector}: status ${s}: ${text.slice(0, 400)}`);
}

/** The heatmap overlay's drawn pixels: how many are opaque, and how many distinct colours. */
export async function overlayStats(page, selector) {
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
export async function checkLab(page) {
  await ready(page, "#lab-result");
  const classes = await page.$$eval("#lab-classes li", (items) => items.map((item) => item.textContent));
  if (classes.length < 1) throw new Error("no classes");
  const concepts = await page.$$eval("#lab-concepts li", (items) => items.length);
  if (concepts < 1) throw new Error("no concepts");
  const heat = await overlayStats(page, "#lab-overlay");
  if (heat.opaque === 0 || heat.colours < 8) throw new Error(`the heatmap looks blank: ${JSON.stringify(heat)}`);
  return { classes, heat };
}

/** Opens the demo on the CPU at `query` and waits for the lab's first analysis ([checkLab]). */
export async function openLab(page, query = "") {
  await page.goto(`${base}/index.html?backend=cpu${query}`);
  await ready(page, "main");
  await checkLab(page);
}

/** Clicks `selector` and returns the download it starts: its file name and bytes. */
export async function download(page, selector) {
  const [started] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.click(selector)]);
  const path = await started.path();
  return { name: started.suggestedFilename(), bytes: await readFile(path) };
}

/** Moves to the route `hash` in the loaded page (a hashchange, no reload). */
export async function go(page, hash) {
  await page.evaluate((h) => (location.hash = h), hash);
}

/** Throws unless the card's distribution section has its chart (role img, with a summary),
 * 32 bars, the threshold marker, the caption and the percentiles; returns the markers. */
export async function checkHistogram(page, scope) {
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

/** Throws unless the heads grid at `selector` (head-grid.ts; Playwright's selectors reach into
 * the card's shadow root) has a row per layer of the demo model after `layer` and a column per
 * head (the bundle's manifest.model_config), a value and colour in every cell and its largest
 * heads named; returns what it shows. */
export async function checkHeadGrid(page, selector, layer) {
  const manifest = JSON.parse(await readFile(join(www, "dist", "models", "tiny", "bundle", "manifest.json"), "utf8"));
  const vision = manifest.model_config.vision_config;
  const expected = { rows: vision.num_hidden_layers - layer - 1, columns: vision.num_attention_heads };
  const shown = await page.$eval(selector, (grid) => ({
    rows: grid.querySelectorAll("tbody tr").length,
    rowHeaders: [...grid.querySelectorAll("tbody th[scope=row]")].map((th) => th.textContent),
    columns: grid.querySelectorAll("thead th[scope=col]").length - 1,
    caption: grid.querySelector("caption")?.textContent ?? "",
    cells: [...grid.querySelectorAll("td.head-cell")].map((td) => ({
      text: td.textContent,
      heat: Number(td.style.getPropertyValue("--heat")),
    })),
    largest: grid.querySelector(".head-largest")?.textContent ?? "",
  }));
  const laterLayers = Array.from({ length: expected.rows }, (_, i) => `Layer ${layer + 1 + i}`);
  if (
    shown.rows !== expected.rows ||
    shown.columns !== expected.columns ||
    JSON.stringify(shown.rowHeaders) !== JSON.stringify(laterLayers)
  )
    throw new Error(`heads grid of layer ${layer}: expected ${JSON.stringify(expected)}, shown ${JSON.stringify(shown)}`);
  const badCell = shown.cells.find((cell) => !/^[+−]\d+\.\d{3}$/.test(cell.text) || !(cell.heat >= 0 && cell.heat <= 1));
  if (shown.cells.length !== expected.rows * expected.columns || badCell || !shown.cells.some((cell) => cell.heat === 1))
    throw new Error(`heads grid cells: ${JSON.stringify(shown.cells)}`);
  if (!shown.caption || !/^Largest: L\d+ H\d+ [+−]\d/.test(shown.largest)) throw new Error(`heads grid text: ${JSON.stringify(shown)}`);
  return shown;
}

/** Opens the lab's first list of significant neurons (closed when a layer has more than 12). */
export async function openNeuronLists(page) {
  await page.$eval("#lab-neurons details", (list) => (list.open = true));
}

/** Runs an ablation by clicking `selector`; returns what the result shows. */
export async function ablate(page, selector) {
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

/** A PNG of `width` x `height` RGB pixels (a gradient), encoded here: huge images are quick to
 * make and slow to decode. */
export function gradientPng(width, height) {
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

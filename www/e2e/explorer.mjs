// The neuron explorer: deep links to a card with its activation maps (and a malformed address),
// search, a card's histogram, word pages, and a format-2 bundle's cards without histograms.

import { copyFile, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { base, check, checkHeadGrid, checkHistogram, go, out, overlayStats, ready, status, timings, TIMEOUT, www } from "./harness.mjs";

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

/** The checks, in the order they run. */
export const checks = [
  check("neuron-deep-link", async (page) => {
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
    await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 5", null, {
      timeout: TIMEOUT,
    });
    // A malformed address: a message in the card, not a blank view.
    await page.evaluate(() => {
      location.hash = "#/neuron/abc/4";
    });
    await page.waitForFunction(() => document.querySelector("#neuron-card")?.dataset.status === "error", null, { timeout: TIMEOUT });
    const message = await page.$eval("#neuron-card", (e) => e.textContent);
    if (!message.includes("names no neuron")) throw new Error(`#/neuron/abc/4 says: ${message}`);
  }),

  check("search", async (page) => {
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
    // Ordered by the fidelity of their words, best first.
    await page.selectOption("#search-order", "fidelity");
    const fidelities = await page.$$eval("#search-word-neurons li", (items) =>
      items.map((item) => Number(/fidelity (-?[\d.]+)/.exec(item.textContent ?? "")?.[1])),
    );
    if (fidelities.length < 1 || fidelities.some(Number.isNaN) || fidelities.some((f, i) => i > 0 && f > fidelities[i - 1]))
      throw new Error(`search by fidelity: ${JSON.stringify(fidelities)}`);
  }),

  check("card-fidelity", async (page) => {
    // The card says how well its words describe it: the cosine, its layer's median and share,
    // and the layer's ten bars with its own tenth marked.
    await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
    await ready(page, "#neuron-card");
    const shown = await page.$eval("#neuron-card dd.fidelity", (dd) => ({
      value: Number(dd.dataset.fidelity),
      text: dd.textContent ?? "",
      bars: dd.querySelectorAll("svg.fidelity-chart rect").length,
      marked: dd.querySelectorAll("svg.fidelity-chart rect.this").length,
      label: dd.querySelector("svg.fidelity-chart")?.getAttribute("aria-label") ?? "",
    }));
    if (!(shown.value > -1.0001 && shown.value < 1.0001) || !/cosine between r_n and its reconstruction/.test(shown.text))
      throw new Error(`fidelity: ${JSON.stringify(shown)}`);
    if (shown.bars !== 10 || shown.marked !== 1 || !/Layer 1's neurons by the fidelity/.test(shown.label))
      throw new Error(`fidelity chart: ${JSON.stringify(shown)}`);
    await page.$eval("#neuron-card dd.fidelity", (dd) => dd.scrollIntoView());
    await page.screenshot({ path: join(out, "card-fidelity.png") });
  }),

  check("card-heads-and-neighbours", async (page) => {
    // The card's heads grid (a row per later layer of the model, a column per head) and its
    // neighbours, each a link to its card with its cosine.
    await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
    await ready(page, "#neuron-card");
    await checkHeadGrid(page, "#neuron-card .card-heads .head-grid", 1);
    const neighbours = await page.$$eval("#neuron-card .card-neighbours li", (items) =>
      items.map((li) => ({ href: li.querySelector("a")?.getAttribute("href") ?? "", text: li.textContent ?? "" })),
    );
    if (neighbours.length < 1 || !neighbours.every((n) => /^#\/neuron\/1\/\d+$/.test(n.href) && /cosine -?\d\.\d\d/.test(n.text)))
      throw new Error(`neighbours: ${JSON.stringify(neighbours)}`);
    // Typical images: a row per band of its distribution (5), the sampled images as thumbnails.
    const bands = await page.$$eval("#neuron-card .card-typical .typical-band", (rows) =>
      rows.map((row) => ({ range: row.querySelector(".typical-range")?.textContent ?? "", images: row.querySelectorAll("img").length })),
    );
    const sampled = bands.reduce((sum, band) => sum + band.images, 0);
    if (bands.length !== 5 || sampled < 1 || sampled > 6 || !bands[4].range.includes("at least"))
      throw new Error(`typical images: ${JSON.stringify(bands)}`);
    // The card's render time after its data arrived (target: 100 ms).
    timings["card-render-ms"] = Number(await page.$eval("#neuron-card", (card) => card.dataset.renderMs));
    // A neighbour's link opens its card; the deepest lens layer has fewer later heads.
    await page.click("#neuron-card .card-neighbours li a");
    const title = `Layer 1, neuron ${neighbours[0].href.split("/").pop()}`;
    await page.waitForFunction((t) => document.querySelector("#card-title")?.textContent === t, title, { timeout: TIMEOUT });
    await ready(page, "#neuron-card");
    await go(page, "#/neuron/2/17");
    await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 2, neuron 17", null, {
      timeout: TIMEOUT,
    });
    await ready(page, "#neuron-card");
    await checkHeadGrid(page, "#neuron-card .card-heads .head-grid", 2);
    await page.$eval("#neuron-card .card-heads", (section) => section.scrollIntoView());
    await page.screenshot({ path: join(out, "card-heads.png") });
  }),

  check("card-histogram", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
    await ready(page, "#neuron-card");
    const marks = await checkHistogram(page, "#neuron-card");
    // Nothing was analysed: no image is marked.
    if (marks.some((m) => m.kind === "analysed")) throw new Error(`an image is marked before any analysis: ${JSON.stringify(marks)}`);
    // Six images: format 5 keeps every norm, so every percentile is exact (no ≈, no bounds).
    const shown = await page.$eval("#neuron-card .distribution", (section) => ({
      cells: [...section.querySelectorAll(".percentiles td")].map((td) => td.textContent ?? ""),
      note: section.querySelector(".percentile-bounds")?.textContent ?? "",
    }));
    const [median, ...upper] = shown.cells;
    if (shown.cells.length !== 5 || [median, ...upper].some((cell) => cell.startsWith("≈")) || shown.note !== "")
      throw new Error(`percentiles: ${JSON.stringify(shown)}`);
  }),

  check("word-page", async (page) => {
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
  }),

  check("old-bundle", async (page) => {
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
  }),
];

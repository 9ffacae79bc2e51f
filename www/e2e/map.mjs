// The map of a layer's neurons (#/map/<layer>): every neuron drawn, hover names one, a search
// highlights and lists the matches, a click opens the card; and the frame times of a pan (the
// demo's 256 neurons, then 3072 synthetic points: the paper's layer), kept in timings.json.

import { join } from "node:path";
import { base, check, out, ready, timings } from "./harness.mjs";

/** Pans the map for `frames` animation frames; the frames' intervals and the draws' times (ms). */
async function panFrames(page, frames) {
  return page.evaluate(async (count) => {
    const map = document.querySelector("#map-canvas").mapCanvas;
    map.drawTimes.length = 0;
    const intervals = [];
    let last = performance.now();
    await new Promise((resolve) => {
      let n = 0;
      const step = () => {
        const now = performance.now();
        intervals.push(now - last);
        last = now;
        map.pan(3, 2);
        if (++n < count) requestAnimationFrame(step);
        else requestAnimationFrame(resolve);
      };
      requestAnimationFrame(step);
    });
    const p95 = (values) => [...values].sort((a, b) => a - b)[Math.floor(0.95 * (values.length - 1))];
    return { frames: count, p95FrameMs: p95(intervals.slice(1)), p95DrawMs: p95(map.drawTimes), draws: map.drawTimes.length };
  }, frames);
}

/** Client coordinates of map point `index`. */
async function clientPoint(page, index) {
  return page.evaluate((i) => {
    const canvas = document.querySelector("#map-canvas");
    const [x, y] = canvas.mapCanvas.canvasPoint(i);
    const box = canvas.getBoundingClientRect();
    return { x: box.left + (x * box.width) / canvas.width, y: box.top + (y * box.height) / canvas.height };
  }, index);
}

/** The checks, in the order they run. */
export const checks = [
  check("map", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu#/map/1`);
    await ready(page, "main");
    await ready(page, "#map-status");
    const points = await page.$eval("#view-map", (section) => Number(section.dataset.points));
    if (points !== 256) throw new Error(`the map shows ${points} neurons, not the layer's 256`);
    const title = await page.$eval("#map-title", (h) => h.textContent);
    if (title !== "Map of layer 1") throw new Error(`title “${title}”`);
    // Hover over neuron 7's point: the line under the map names a neuron of layer 1.
    const seven = await clientPoint(page, 7);
    await page.mouse.move(seven.x, seven.y);
    await page.waitForFunction(() => /^Neuron 1:\d+ /.test(document.querySelector("#map-hover")?.textContent ?? ""), null, {
      timeout: 10_000,
    });
    // Search a word of neuron 7: it is among the matches, listed as links to cards.
    const word = await page.evaluate(
      () =>
        document
          .querySelector("#map-hover")
          .textContent.replace(/^Neuron 1:\d+ /, "")
          .split(", ")[0],
    );
    await page.fill("#map-search", word);
    const matches = await page.$eval("#map-matches", (e) => e.textContent ?? "");
    const links = await page.$$eval("#map-list a", (items) => items.map((a) => a.getAttribute("href")));
    if (!/^\d+ neurons? match$/.test(matches) || links.length === 0 || !links.every((h) => h.startsWith("#/neuron/1/")))
      throw new Error(`searching “${word}”: “${matches}”, links ${links.slice(0, 3)}`);
    await page.screenshot({ path: join(out, "map-search.png") });
    // A click on a point opens its card.
    await page.fill("#map-search", "");
    const point = await clientPoint(page, 7);
    await page.mouse.click(point.x, point.y);
    await page.waitForFunction(() => location.hash.startsWith("#/neuron/1/"), null, { timeout: 10_000 });
    // Back on the map, the frame times of a pan over its 256 points.
    await page.evaluate(() => (location.hash = "#/map/1"));
    await ready(page, "#map-status");
    timings["map-pan-256"] = await panFrames(page, 120);
    // The paper's layer: 3072 points (seeded), fitted and panned.
    await page.evaluate(() => {
      let state = 7;
      const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 20 - 10;
      const points = Float32Array.from({ length: 2 * 3072 }, random);
      document.querySelector("#map-canvas").mapCanvas.show({ points, labels: Array.from({ length: 3072 }, (_, i) => `#${i}`) });
    });
    timings["map-pan-3072"] = await panFrames(page, 240);
  }),
];

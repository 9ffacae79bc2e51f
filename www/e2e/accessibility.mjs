// Accessibility: every view of the page and the embeddable card, as a visitor sees it with the
// demo loaded, checked by axe-core (Deque's accessibility engine: WCAG 2.x A and AA and best
// practices, plus `label-content-name-mismatch`, which axe marks experimental: an accessible
// name that does not contain the visible text). No serious or critical violation may remain.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { base, check, checkLab, go, openNeuronLists, out, ready, timings, TIMEOUT, www } from "./harness.mjs";

/** axe-core's script, evaluated in the page (DevTools evaluation, outside the page's CSP). */
const axeSource = readFileSync(createRequire(join(www, "package.json")).resolve("axe-core/axe.min.js"), "utf8");

/** The serious and critical violations of the page as it is now: per rule, its impact, its
 * help text and up to three of its elements. */
async function violations(page) {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, { rules: { "label-content-name-mismatch": { enabled: true } } });
    return result.violations.map((v) => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      count: v.nodes.length,
      examples: v.nodes.slice(0, 3).map((node) => node.target.join(" ")),
    }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Each view, reached as a visitor reaches it, and what shows it is ready. */
const VIEWS = [
  ["lab", "#/lab", async (page) => showLabHeads(page)],
  ["explorer", "#/neuron/1/4", (page) => ready(page, "#neuron-card")],
  ["search", "#/search/dog", (page) => ready(page, "#search-result")],
  ["list", "#/list/1:4,1:7", (page) => ready(page, "#list-cards")],
  ["word", null, (page) => ready(page, "#word-result")],
  ["map", "#/map/1", (page) => ready(page, "#map-status")],
  ["miner", "#/miner", (page) => ready(page, "#miner-result")],
  ["build", "#/build", (page) => page.waitForSelector("#build-form", { timeout: TIMEOUT })],
];

/** The checks, in the order they run. */
export const checks = [
  check("accessibility", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    const report = {};
    for (const [name, hash, isReady] of VIEWS) {
      // The word view of a word the demo's neurons use (the first word on neuron 1/4's card).
      const route = hash ?? `#/word/${encodeURIComponent(await firstWord(page))}`;
      await go(page, route);
      await isReady(page);
      report[name] = await violations(page);
      await page.screenshot({ path: join(out, `accessibility-${name}.png`) });
    }
    // The Build view with a build's bars and the kept bundle listed (the six samples, k 3).
    await go(page, "#/build?layers=1&k=3&components=8");
    await page.click("#build-samples");
    await page.fill("#build-name", "accessible");
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    await go(page, "#/build");
    await page.waitForSelector('#my-bundles-list li[data-bundle="accessible"]', { timeout: TIMEOUT });
    report["build (after a build)"] = await violations(page);
    await page.screenshot({ path: join(out, "accessibility-build-done.png") });
    await page.goto(`${base}/card.html?layer=1&neuron=4`);
    await page.waitForFunction(() => document.querySelector("clip-lens-neuron")?.dataset.status === "ready", null, { timeout: TIMEOUT });
    report.card = await violations(page);
    timings.accessibility = Object.fromEntries(Object.entries(report).map(([view, found]) => [view, found.length]));
    const failing = Object.entries(report).filter(([, found]) => found.length > 0);
    if (failing.length) throw new Error(`axe-core: ${JSON.stringify(Object.fromEntries(failing))}`);
  }),
];

/** The first word on neuron 1/4's card. */
async function firstWord(page) {
  await go(page, "#/neuron/1/4");
  await ready(page, "#neuron-card");
  return page.$eval("#neuron-card a[href^='#/word/']", (link) => decodeURIComponent(link.getAttribute("href").slice("#/word/".length)));
}

/** The analysed lab with its first significant neuron's heads grid open. */
async function showLabHeads(page) {
  await checkLab(page);
  await openNeuronLists(page);
  await page.click("#lab-neurons .heads-toggle");
  await ready(page, ".neuron-heads:not([hidden])");
}

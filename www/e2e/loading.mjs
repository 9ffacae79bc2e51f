// Loading the site: the demo on WebGPU and on the CPU (with the sample analysed), auto's choice
// of the CPU over a software adapter, a backend switch, a lost GPU device, broken or mismatched
// files (a readable error, not a blank page), the second visit from the browser's cache, local
// files, one thread on request, and cross-origin isolation by the service worker.

import { join } from "node:path";
import { base, check, checkCpuThreads, checkLab, plainPort, ready, status, timings, TIMEOUT, www } from "./harness.mjs";

/** When the page painted first and when it was ready with the sample analysed (ms after it
 * was opened). */
async function readyTimes(page) {
  const readyAt = await page.evaluate(() => performance.getEntriesByName("clip-lens-ready")[0]?.startTime ?? null);
  const paint = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null);
  return { first_contentful_paint_ms: paint, ready_with_sample_analysed_ms: readyAt };
}

/** The checks, in the order they run. */
export const checks = [
  ...["webgpu", "cpu"].map((backend) =>
    check(`demo-${backend}`, async (page) => {
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
    }),
  ),

  // Headless Chromium's only WebGPU adapter is SwiftShader (software, isFallbackAdapter): `auto`
  // takes the CPU and says why; `?backend=webgpu` (demo-webgpu above) still uses it.
  check("auto-skips-software-webgpu", async (page) => {
    await page.goto(`${base}/index.html`);
    await ready(page, "main");
    const backend = await page.$eval("#backend", (e) => e.dataset.backend);
    const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
    if (backend !== "cpu" || !/software/.test(shown)) throw new Error(`backend ${backend}, shown “${shown}”`);
    await checkCpuThreads(page);
    await checkLab(page);
    timings["demo-auto"] = await readyTimes(page);
  }),

  check("backend-switch", async (page) => {
    await page.goto(`${base}/index.html?backend=webgpu`);
    await ready(page, "main");
    await page.selectOption("#backend-choice", "cpu");
    await page.waitForFunction(() => document.querySelector("#backend")?.dataset.backend === "cpu", null, { timeout: TIMEOUT });
    await ready(page, "main");
    await checkLab(page);
  }),

  check("device-lost-fallback", async (page) => {
    await page.goto(`${base}/index.html?backend=webgpu&simulate=device-lost`);
    await ready(page, "main");
    const backend = await page.$eval("#backend", (e) => e.dataset.backend);
    const notice = await page.$eval("#notice", (e) => (e.hidden ? "" : e.textContent));
    if (backend !== "cpu" || !/lost/.test(notice)) throw new Error(`backend ${backend}, notice “${notice}”`);
    await checkLab(page);
  }),

  check("broken-weights", async (page) => {
    await page.goto(`${base}/index.html?weights=models/missing.safetensors&backend=cpu`);
    const { status: s, text } = await status(page, "main");
    if (s !== "error") throw new Error(`status ${s}, expected error`);
    if (!/404|missing|reach/i.test(text)) throw new Error(`the error does not say what is wrong: ${text.slice(0, 300)}`);
  }),

  check("wrong-files", async (page) => {
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
  }),

  check("model-without-bundle-classifies", async (page) => {
    // The demo's converted model alone (?bundle= empty): its text side (text-embeddings.safetensors
    // beside the towers) still classifies, and the lab says what a bundle adds.
    await page.goto(`${base}/index.html?backend=cpu&bundle=`);
    await ready(page, "main");
    await page.waitForFunction(() => document.querySelector("#lab-result")?.dataset.status === "ready", null, { timeout: TIMEOUT });
    const classes = await page.$$eval("#lab-classes li", (items) => items.map((item) => item.textContent));
    const concepts = await page.$eval("#lab-concepts", (e) => e.textContent ?? "");
    const statusText = await page.$eval("#status", (e) => e.textContent ?? "");
    const files = await page.$$eval("#downloads li", (items) => items.map((item) => item.dataset.file));
    if (classes.length === 0) throw new Error("no classes without a bundle");
    if (!/need a bundle/.test(concepts)) throw new Error(`the lab does not say what a bundle adds: ${concepts}`);
    const offered = await page.$eval("#lab-concepts a[href='#/build']", (a) => a.textContent).catch(() => null);
    if (offered === null) throw new Error("the lab does not offer the Build view");
    const shown = await page.$$eval("#ablation, #lab-export", (parts) => parts.filter((part) => !part.hidden).map((part) => part.id));
    if (shown.length > 0) throw new Error(`shown without a bundle, where nothing can be ablated or exported: ${shown}`);
    if (!/classifies with the model's text side/.test(statusText)) throw new Error(`status: ${statusText}`);
    if (!files.includes("text embeddings")) throw new Error(`no text embeddings downloaded: ${files}`);
    const text = await page.$eval("body", (e) => e.innerText);
    if (/loadBundle|loadTextTower|call analy/.test(text)) throw new Error("an internal name reaches the page");
  }),

  check("second-visit-from-cache", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    await page.reload();
    await ready(page, "main");
    const sources = await page.$$eval("#downloads li", (items) =>
      Object.fromEntries(items.map((item) => [item.dataset.file, item.dataset.source])),
    );
    if (sources["image tower"] !== "cache" || sources.bundle !== "cache") throw new Error(`second visit: ${JSON.stringify(sources)}`);
  }),

  check("local-files", async (page) => {
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
    await page.setInputFiles("#config-file", join(root, "tests/fixtures/tiny-a/config.json"));
    await page.click("#file-form button[type=submit]");
    await page.waitForFunction(() => /manifest/.test(document.querySelector("#bundle-source")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
    await ready(page, "main");
    await checkLab(page);
    const source = await page.$eval("#downloads li[data-file=bundle]", (e) => e.dataset.source);
    if (source !== "local") throw new Error(`bundle source ${source}`);
    // Weights alone whose shapes do not tell the model (a 64-wide tower: 4 heads of 16, not OpenAI's
    // heads of 64): refused with a message that asks for the configuration, never guessed.
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    await page.click("#source-panel summary");
    await page.setInputFiles("#weights-file", join(root, "tests/fixtures/tiny-a/model-openai.safetensors"));
    await page.click("#file-form button[type=submit]");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.status === "error", null, { timeout: TIMEOUT });
    const refused = await status(page, "main");
    if (!/configuration/.test(refused.text)) throw new Error(`weights without a configuration: ${refused.text.slice(0, 300)}`);
  }),

  check("one-thread", async (page) => {
    // ?threads=1: the single-threaded module, and the page says why.
    await page.goto(`${base}/index.html?backend=cpu&threads=1`);
    await ready(page, "main");
    const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
    if (!shown.startsWith("CPU, 1 thread: one thread was asked for")) throw new Error(`the page says “${shown}”`);
    await checkLab(page);
  }),

  check("service-worker-isolation", async (page) => {
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
  }),
];

// The Build view: a bundle built in the page over the six samples with the demo model (its
// settings preset by the address), progress per stage, the bundle opened in the explorer, and
// its zip download unzipped and read by `clip-lens describe` as a CLI bundle.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base, check, download, go, gradientPng, out, ready, timings, TIMEOUT, www } from "./harness.mjs";

/** The native CLI that CI builds before the e2e (`cargo test` builds it). */
const clipLens = join(process.env.CARGO_TARGET_DIR ?? join(www, "..", "target"), "debug", "clip-lens");

/** Unzips `bytes` into a fresh folder with Python's zipfile (another reader than ours). */
function unzip(bytes) {
  const dir = mkdtempSync(join(tmpdir(), "clip-lens-built-"));
  writeFileSync(join(dir, "bundle.zip"), bytes);
  const script =
    "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print(len(z.namelist()))";
  execFileSync("python3", ["-c", script, join(dir, "bundle.zip"), join(dir, "bundle")]);
  return join(dir, "bundle");
}

/** Records, from now on, when each stage's bar appears (seconds since this call). */
async function watchStages(page) {
  await page.evaluate(() => {
    const started = performance.now();
    const seen = {};
    window.__buildStageStarts = seen;
    const list = document.querySelector("#build-stages");
    new MutationObserver(() => {
      for (const item of list.querySelectorAll("li[data-stage]")) {
        seen[item.dataset.stage] ??= Math.round(performance.now() - started) / 1000;
      }
    }).observe(list, { childList: true, subtree: true });
  });
}

/** When each stage's bar appeared since `watchStages`, in seconds. */
function stageStarts(page) {
  return page.evaluate(() => window.__buildStageStarts);
}

/** The checks, in the order they run. */
export const checks = [
  check("build-a-bundle", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu#/build?layers=0,1,2&k=3&components=8`);
    await ready(page, "main");
    const preset = await page.$eval("#build-form", (form) =>
      ["#build-layers", "#build-k", "#build-components"].map((s) => form.querySelector(s).value),
    );
    if (preset.join("|") !== "0,1,2|3|8") throw new Error(`the address's settings are not in the form: ${preset}`);
    // Too large a k is said before anything runs.
    await page.click("#build-samples");
    await page.fill("#build-k", "7");
    await page.click("#build-start");
    const refused = await page.$eval("#build-status", (e) => e.textContent ?? "");
    if (!/only 6 images/.test(refused)) throw new Error(`k 7 over 6 images: “${refused}”`);
    await page.fill("#build-k", "3");
    await page.fill("#build-name", "the samples");
    await page.click("#build-start");
    const badName = await page.$eval("#build-status", (e) => e.textContent ?? "");
    if (!/cannot name a bundle/.test(badName)) throw new Error(`a name with a space: “${badName}”`);
    await page.fill("#build-name", "samples");
    await watchStages(page);
    const started = Date.now();
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    const seconds = (Date.now() - started) / 1000;
    timings["build-a-bundle"] = { six_samples_s: seconds, stage_starts_s: await stageStarts(page) };
    const stages = await page.$$eval("#build-stages li[data-stage]", (items) =>
      items.map((item) => [item.dataset.stage, item.querySelector("progress").value, item.querySelector("progress").max]),
    );
    for (const name of ["pass 1", "pass 2", "sparse decompositions"]) {
      const stage = stages.find(([stage]) => stage.startsWith(name));
      if (!stage || stage[1] !== stage[2]) throw new Error(`no finished “${name}” bar: ${JSON.stringify(stages)}`);
    }
    // The explorer shows the built bundle.
    await page.waitForFunction(() => location.hash.startsWith("#/neuron"), null, { timeout: TIMEOUT });
    await ready(page, "#neuron-card");
    await page.screenshot({ path: join(out, "build-explorer.png") });
    // The zip is what precompute writes, and the CLI reads it.
    await go(page, "#/build");
    const zip = await download(page, "#build-download");
    if (zip.name !== "samples.zip") throw new Error(`download named ${zip.name}`);
    const dir = unzip(zip.bytes);
    for (const file of ["manifest.json", "lens.safetensors"]) if (!existsSync(join(dir, file))) throw new Error(`the zip has no ${file}`);
    if (!existsSync(clipLens)) throw new Error(`${clipLens} is missing: build the CLI (cargo build) before the e2e`);
    const described = JSON.parse(
      execFileSync(clipLens, ["describe", "--bundle", dir, "--layer", "1", "--neuron", "4", "--json"], { encoding: "utf8" }),
    );
    if (!Array.isArray(described.words) || described.words.length === 0)
      throw new Error(`describe: ${JSON.stringify(described).slice(0, 300)}`);
    // The zip imported again under another name opens as a bundle; a file that is no zip is refused.
    await page.setInputFiles("#my-bundles-import", { name: "imported.zip", mimeType: "application/zip", buffer: zip.bytes });
    await page.waitForSelector('#my-bundles-list li[data-bundle="imported"][data-whole="true"]', { timeout: TIMEOUT });
    await page.setInputFiles("#my-bundles-import", { name: "broken.zip", mimeType: "application/zip", buffer: Buffer.from("not a zip") });
    await page.waitForFunction(() => /not a zip archive/.test(document.querySelector("#my-bundles-status")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
    // Kept in the browser: listed, named by the address, reopened by a reload, deleted.
    await checkKept(page);
  }),

  check("build-on-webgpu", async (page) => {
    // The same build on WebGPU (SwiftShader here: correctness, not speed).
    await page.goto(`${base}/index.html?backend=webgpu#/build?layers=0,1,2&k=3&components=8`);
    await ready(page, "main");
    await page.click("#build-samples");
    await page.fill("#build-name", "samples-webgpu");
    await watchStages(page);
    const started = Date.now();
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    timings["build-on-webgpu"] = { six_samples_s: (Date.now() - started) / 1000, stage_starts_s: await stageStarts(page) };
    await ready(page, "#neuron-card");
    const backend = await page.$eval("main", (e) => e.dataset.backend);
    if (backend !== "webgpu") throw new Error(`the build's model ran on ${backend}`);
  }),

  check("build-survives-a-lost-gpu", async (page) => {
    // The build's GPU device is lost (simulated as the build starts): it goes on on the CPU, says
    // so, and the bundle is whole.
    await page.goto(`${base}/index.html?backend=webgpu&simulate=build-device-lost#/build?layers=0,1&k=3&components=8`);
    await ready(page, "main");
    await page.click("#build-samples");
    await page.fill("#build-name", "samples-lost-gpu");
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    const notes = await page.$$eval("#build-stages li.hint", (items) => items.map((item) => item.textContent ?? ""));
    if (!notes.some((note) => /GPU device was lost .* goes on on the CPU, from its last checkpoint/.test(note)))
      throw new Error(`no word of the lost GPU: ${JSON.stringify(notes)}`);
    await page.waitForSelector('#my-bundles-list li[data-bundle="samples-lost-gpu"][data-whole="true"]', {
      state: "attached",
      timeout: TIMEOUT,
    });
  }),

  check("build-stops-and-resumes", async (page) => {
    // 24 images, 3 batches a pass: paused before the first batch ends, stopped there (after a
    // checkpoint), then built again: it resumes from the checkpoint, and the bundle is whole.
    await page.goto(`${base}/index.html?backend=cpu#/build?layers=1&k=3&components=8`);
    await ready(page, "main");
    const files = Array.from({ length: 24 }, (_, i) => ({ name: `g${i}.png`, mimeType: "image/png", buffer: gradientPng(64 + i, 64) }));
    await page.setInputFiles("#build-images", files);
    await page.fill("#build-name", "gradients");
    await page.click("#build-start");
    await page.click("#build-pause");
    await page.waitForFunction(() => /^pass 1/.test(document.querySelector("#build-stages li[data-stage]")?.dataset.stage ?? ""), null, {
      timeout: TIMEOUT,
    });
    await page.click("#build-stop");
    await page.waitForFunction(() => document.querySelector("#view-build")?.dataset.build === "stopped", null, { timeout: TIMEOUT });
    await page.waitForSelector('#my-bundles-list li[data-bundle="gradients"][data-whole="false"]', { timeout: TIMEOUT });
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    const notes = await page.$$eval("#build-stages li.hint", (items) => items.map((item) => item.textContent));
    if (!notes.some((note) => /resuming from the checkpoint: pass 1\/2 at image 8\/24/.test(note)))
      throw new Error(`no resume: ${JSON.stringify(notes)}`);
    await go(page, "#/build");
    await page.waitForSelector('#my-bundles-list li[data-bundle="gradients"][data-whole="true"]', { timeout: TIMEOUT });
  }),

  check("build-computes-the-text-side", async (page) => {
    // The tiny model as one file: no text side beside it, so the build computes one for the
    // paper's 30k words (1 class template, the quick setting), says so first, and keeps it: after
    // a reload the Build view says nothing is left to embed, and the lab classifies without a bundle.
    const address = `${base}/index.html?backend=cpu&weights=models/tiny/model.safetensors&config=models/tiny/config.json`;
    await page.goto(`${address}#/build?layers=0,1&k=3&components=8`);
    await ready(page, "main");
    const pool = await page.$eval("#build-pool", (select) => [select.value, select.querySelector('option[value="model"]').disabled]);
    if (pool.join("|") !== "30k|true") throw new Error(`without a text side the pool is ${pool}`);
    const plan = () => page.$eval("#build-text-plan", (e) => e.textContent ?? "");
    await page.waitForFunction(
      () => /1,000 classes × 80 templates/.test(document.querySelector("#build-text-plan")?.textContent ?? ""),
      null,
      {
        timeout: TIMEOUT,
      },
    );
    if (!/[\d,]+ words and 1,000 classes × 80 templates: [\d,]+ prompts .*Class templates 1/.test(await plan()))
      throw new Error(`the plan before a build: “${await plan()}”`);
    await page.selectOption("#build-templates", "1");
    await page.waitForFunction(
      () => /1,000 classes × 1 templates/.test(document.querySelector("#build-text-plan")?.textContent ?? ""),
      null,
      {
        timeout: TIMEOUT,
      },
    );
    // Images dropped on the view (a drop without folder entries gives its files).
    await page.evaluate(async () => {
      const transfer = new DataTransfer();
      for (const name of ["cat.jpg", "horse.png", "rocket.jpg"]) {
        const blob = await (await fetch(`samples/${name}`)).blob();
        transfer.items.add(new File([blob], name, { type: blob.type }));
      }
      transfer.items.add(new File(["not an image"], "notes.txt", { type: "text/plain" }));
      document
        .querySelector("#build-drop")
        .dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(
      () => /^3 images, .*1 other files left out/.test(document.querySelector("#build-picked")?.textContent ?? ""),
      null,
      {
        timeout: TIMEOUT,
      },
    );
    await page.fill("#build-name", "text-side");
    const started = Date.now();
    await page.click("#build-start");
    await page.waitForFunction(() => document.querySelector("main")?.dataset.build === "done", null, { timeout: TIMEOUT });
    timings["build-computes-the-text-side"] = { build_with_text_side_s: (Date.now() - started) / 1000 };
    const stages = await page.$$eval("#build-stages li[data-stage]", (items) => items.map((item) => item.dataset.stage));
    const notes = await page.$$eval("#build-stages li.hint", (items) => items.map((item) => item.textContent ?? ""));
    if (!stages.includes("embedding words") || !stages.includes("embedding ImageNet classes"))
      throw new Error(`no text-side stages: ${JSON.stringify(stages)}`);
    if (!notes.some((n) => /^Computing the model's text side first/.test(n)) || !notes.some((n) => /kept in this browser/.test(n)))
      throw new Error(`the text side's notes: ${JSON.stringify(notes)}`);
    await go(page, "#/build");
    await page.screenshot({ path: join(out, "build-text-side.png"), fullPage: true });
    if (await page.$eval('#build-pool option[value="model"]', (option) => option.disabled))
      throw new Error("the text side just computed is not offered as the model's pool");
    await page.goto(`${address}#/build`);
    await ready(page, "main");
    // The kept text side is the model's pool now, and holds the 30k words and the classes.
    await page.waitForFunction(() => /the model's own/.test(document.querySelector("#build-text-plan")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
    if ((await page.$eval("#build-pool", (select) => select.value)) !== "model")
      throw new Error("the kept text side is not the model's pool");
    await page.selectOption("#build-pool", "30k");
    await page.selectOption("#build-templates", "1");
    await page.waitForFunction(() => /kept for this model/.test(document.querySelector("#build-text-plan")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
  }),
];

/** After "build-a-bundle": the bundle is listed in My bundles, the address names it, a reload
 * reopens it, and Delete removes it. */
async function checkKept(page) {
  const kept = await page.$$eval("#my-bundles-list li[data-bundle]", (items) => items.map((item) => item.dataset.bundle));
  if (!kept.includes("samples")) throw new Error(`My bundles: ${kept}`);
  if (!page.url().includes("bundle=local%3Asamples") && !page.url().includes("bundle=local:samples"))
    throw new Error(`the address does not name the kept bundle: ${page.url()}`);
  await page.goto(`${base}/index.html?backend=cpu&bundle=local:imported#/neuron/1/4`);
  await ready(page, "main");
  await ready(page, "#neuron-card");
  await page.goto(`${base}/index.html?backend=cpu&bundle=local:samples#/neuron/1/4`);
  await ready(page, "main");
  await ready(page, "#neuron-card");
  const source = await page.$eval("#bundle-source", (e) => e.textContent ?? "");
  if (!/kept in this browser: samples/.test(source)) throw new Error(`bundle source after a reload: ${source}`);
  // Its thumbnails come from storage (object URLs) and decode.
  const thumbnails = await page.$$eval("#neuron-card img", (images) =>
    images.map((image) => [image.getAttribute("src") ?? "", image.complete && image.naturalWidth > 0]),
  );
  if (thumbnails.length === 0 || !thumbnails.every(([src]) => src.startsWith("blob:")))
    throw new Error(`the kept bundle's thumbnails: ${JSON.stringify(thumbnails)}`);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#neuron-card img")].every((i) => i.complete && i.naturalWidth > 0),
    null,
    {
      timeout: TIMEOUT,
    },
  );
  await go(page, "#/build");
  await page.click('#my-bundles-list li[data-bundle="samples"] button');
  await page.waitForFunction(() => !document.querySelector('#my-bundles-list li[data-bundle="samples"]'), null, { timeout: TIMEOUT });
}

// The page's side of benches/page_build.sh: builds a bundle in the Build view of www/dist (served
// by serve.mjs, headless Chromium, CPU backend) from the converted towers at models/bench/ over
// the images of a folder, polling each stage's bar once a second; then builds again, reloads the
// page during pass 2 and builds once more, to see where it resumes. Prints one JSON object: each
// stage's steps, seconds and steps per second, the build's total, its peak WebAssembly memory,
// the zip's time, and the reload's loss.
//
//   node benches/page_build.mjs IMAGES_DIR LAYERS K COMPONENTS
//
// CHROMIUM overrides /usr/bin/chromium, BENCH_PORT the server's port (8767), BENCH_TIMEOUT_MS the
// limit of each build (default 60 minutes); BENCH_RELOAD=0 skips the reload.

import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { chromium } = createRequire(join(root, "www", "package.json"))(
  "playwright-core",
);
const [imagesDir, layers, k, components] = process.argv.slice(2);
if (!components) {
  console.error(
    "usage: node benches/page_build.mjs IMAGES_DIR LAYERS K COMPONENTS",
  );
  process.exit(2);
}
const port = Number(process.env.BENCH_PORT ?? 8767);
const timeout = Number(process.env.BENCH_TIMEOUT_MS ?? 60 * 60_000);
const images = readdirSync(imagesDir)
  .filter((name) => name.endsWith(".png"))
  .sort()
  .map((name) => join(imagesDir, name));
const address = `http://127.0.0.1:${port}/index.html?backend=cpu&weights=models/bench/manifest.json#/build?layers=${layers}&k=${k}&components=${components}`;

const server = spawn(process.execPath, [join(root, "www", "serve.mjs")], {
  env: { ...process.env, PORT: String(port) },
  stdio: ["ignore", "pipe", "inherit"],
});
await new Promise((done, fail) => {
  server.stdout.on(
    "data",
    (chunk) => String(chunk).includes("serve:") && done(),
  );
  server.on("exit", (code) => fail(new Error(`serve.mjs exited with ${code}`)));
});
// A profile on disk: an incognito context (a plain `newPage`) keeps OPFS in memory, with a
// quota too small for a large build's checkpoint ("the browser's storage is full").
const profile = mkdtempSync(join(tmpdir(), "clip-lens-bench-profile-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
});

/** The Build view with the images picked and `name` typed, ready to build. */
async function openBuild(page, name) {
  await page.goto(address);
  await page.waitForFunction(
    () =>
      ["ready", "error"].includes(
        document.querySelector("main")?.dataset.status ?? "",
      ),
    null,
    { timeout },
  );
  await page.setInputFiles("#build-images", images);
  await page.fill("#build-name", name);
}

/** Each bar's steps done and total, with the time. */
function bars(page) {
  return page.$$eval("#build-stages li[data-stage]", (items) =>
    items.map((item) => ({
      stage: item.dataset.stage,
      done: item.querySelector("progress").value,
      total: item.querySelector("progress").max,
    })),
  );
}

/** Polls the bars once a second until the build is done (or `until` says stop): per stage, when
 * it was first and last seen moving. */
async function follow(page, until = async () => false) {
  const seen = new Map();
  const started = Date.now();
  for (;;) {
    const state = await page.$eval(
      "#view-build",
      (view) => view.dataset.build ?? "",
    );
    const now = (Date.now() - started) / 1000;
    for (const { stage, done, total } of await bars(page)) {
      const row = seen.get(stage) ?? { stage, first_s: now, first_done: done, total, last_s: now, done };
      if (done !== row.done) Object.assign(row, { last_s: now, done });
      seen.set(stage, row);
    }
    if (state !== "running" || (await until()))
      return { state, seconds: now, stages: [...seen.values()] };
    if (Math.round(now) % 15 === 0)
      console.error(
        `[${Math.round(now)} s] ${[...seen.values()].map((r) => `${r.stage} ${r.done}/${r.total}`).join(", ")} ${await page.$eval("#build-status", (e) => e.textContent)}`,
      );
    await page.waitForTimeout(1000);
  }
}

/** The text tower's speed in the page (BENCH_TEXT_SIDE=1), with the towers at
 * models/bench-notext/ (no text side beside them): builds stopped after BENCH_TEXT_SECONDS (120)
 * of one text stage each, the 30k words, then the classes with 1 and with 80 templates (a
 * one-word pool, so that they start at once); per stage its rate, and the whole stage's time at
 * that rate. */
async function textSideRates() {
  const seconds = Number(process.env.BENCH_TEXT_SECONDS ?? 120);
  const runs = [
    { pool: "30k", templates: "1", stage: "embedding words", total: null },
    { pool: "one-word", templates: "1", stage: "embedding ImageNet classes" },
    { pool: "one-word", templates: "80", stage: "embedding ImageNet classes" },
  ];
  const results = [];
  const only = process.env.BENCH_TEXT_RUNS?.split(",").map(Number);
  for (const run of runs.filter((_, i) => !only || only.includes(i))) {
    await page.goto(
      address
        .replace("models/bench/", "models/bench-notext/")
        .replace(/#.*/, "#/build?layers=9&k=3&components=8"),
    );
    await page.waitForFunction(
      () => document.querySelector("main")?.dataset.status === "ready",
      null,
      { timeout },
    );
    if (run.pool === "one-word")
      await page.setInputFiles("#build-words", {
        name: "one.txt",
        mimeType: "text/plain",
        buffer: Buffer.from("lighthouse\n"),
      });
    else await page.selectOption("#build-pool", run.pool);
    await page.selectOption("#build-templates", run.templates);
    await page.waitForFunction(
      () =>
        /prompts/.test(
          document.querySelector("#build-text-plan")?.textContent ?? "",
        ),
      null,
      { timeout },
    );
    const plan = await page.$eval("#build-text-plan", (e) => e.textContent);
    await page.click("#build-samples");
    await page.fill("#build-name", "text-bench");
    await page.click("#build-start");
    let started = null;
    const seen = await follow(page, async () => {
      const bar = (await bars(page)).find(({ stage }) => stage === run.stage);
      if (bar && bar.done > 0 && started === null) started = Date.now();
      return (
        bar !== undefined &&
        (bar.done >= bar.total ||
          (started !== null && Date.now() - started > seconds * 1000))
      );
    });
    await page.click("#build-stop").catch(() => undefined);
    const row = seen.stages.find(({ stage }) => stage === run.stage);
    const rate =
      row && row.last_s > row.first_s
        ? (row.done - row.first_done) / (row.last_s - row.first_s)
        : null;
    const prompts = run.stage === "embedding words" ? 1 : Number(run.templates);
    run.status = await page.$eval("#build-status", (e) => e.textContent);
    results.push({
      ...run,
      plan,
      steps: row?.done,
      total: row?.total,
      per_second: rate,
      prompts_per_second: rate && rate * prompts,
      whole_stage_s: rate && row.total / rate,
    });
  }
  return results;
}

const page = await browser.newPage();
page.on(
  "console",
  (message) =>
    message.type() === "error" && console.error(`[page] ${message.text()}`),
);
if (process.env.BENCH_TEXT_SIDE === "1") {
  console.log(JSON.stringify(await textSideRates(), null, 1));
  await browser.close();
  server.kill();
  process.exit(0);
}
const result = {
  images: images.length,
  layers,
  k: Number(k),
  components: Number(components),
};
if (process.env.BENCH_BUILD !== "0") await wholeBuild();

/** The build, timed stage by stage, and its zip. */
async function wholeBuild() {
await openBuild(page, "bench");
await page.click("#build-start");
const whole = await follow(page);
result.build = whole;
result.status = await page.$eval("#build-status", (e) => e.textContent);
result.stages = whole.stages.map(
  ({ stage, first_s, last_s, first_done, done }) => ({
    stage,
    steps: done - first_done,
    seconds: Number((last_s - first_s).toFixed(1)),
    per_second:
      last_s > first_s
        ? Number(((done - first_done) / (last_s - first_s)).toFixed(2))
        : null,
  }),
);
if (whole.state === "done") {
  // Download bundle: the zip made in the page from storage, until the browser has it.
  await page.evaluate(() => (location.hash = "#/build"));
  const zipStarted = Date.now();
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout }),
    page.click("#build-download"),
  ]);
  await download.path();
  result.zip_s = (Date.now() - zipStarted) / 1000;
}
}
if (process.env.BENCH_RELOAD !== "0") {
  // A reload during pass 2, after a checkpoint (every 30 s): how far the build gets again.
  await openBuild(page, "bench-reload");
  await page.click("#build-start");
  let reached = 0;
  await follow(page, async () => {
    const pass2 = (await bars(page)).find(({ stage }) =>
      stage.startsWith("pass 2"),
    );
    reached = pass2?.done ?? 0;
    return pass2 !== undefined && reached >= Math.min(images.length / 2, 300);
  });
  await page.reload();
  await openBuild(page, "bench-reload");
  await page.click("#build-start");
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll("#build-stages li.hint")].some((li) =>
        /resuming from the checkpoint/.test(li.textContent ?? ""),
      ),
    null,
    { timeout },
  );
  const note = await page.$$eval("#build-stages li.hint", (items) =>
    items.map((li) => li.textContent).find((t) => /resuming/.test(t)),
  );
  const resumedAt = Number(
    /pass 2\/2 at image (\d+)/.exec(note ?? "")?.[1] ?? NaN,
  );
  result.reload = {
    pass2_images_before_reload: reached,
    resumed_at_image: resumedAt,
    images_lost: reached - resumedAt,
    note,
  };
}
console.log(JSON.stringify(result, null, 1));
await browser.close();
server.kill();

// Runs the benchmark page (bench.html of a built site) in headless Chromium through
// playwright-core, one page per run, and prints each run's JSON result on a line.
//
// Usage (after building the site, see docs/performance.md, *Running the benchmarks*):
//   node benches/browser.mjs [--dist DIR] SETTINGS...
// where each SETTINGS is bench.html's address settings, e.g.
//   node benches/browser.mjs "backend=cpu&runs=3&analysis=1" "backend=webgpu&runs=1&analysis=1"
// (shape defaults to ViT-B/32, batch to 1). A SETTINGS that starts with `index.html` opens the
// page itself instead and times it from opening to ready with the sample analysed (a fresh
// browser profile: nothing cached), e.g. with the paper-sized data of
// `cargo run --profile dev --example paper_site www/dist/models/paper`:
//   node benches/browser.mjs "index.html?weights=models/paper/vit-b-32.safetensors&config=models/paper/config.json&bundle=models/paper/bundle/"
// DIR defaults to www/dist. BENCH_TIMEOUT_MS bounds
// each run (default 15 minutes); a run that does not finish prints {"error": "timeout ..."}.
// CHROMIUM overrides /usr/bin/chromium, BENCH_PORT the server's port (8766).

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { chromium } = createRequire(join(root, "www", "package.json"))("playwright-core");

const args = process.argv.slice(2);
const distAt = args.indexOf("--dist");
const dist = distAt >= 0 ? resolve(args.splice(distAt, 2)[1]) : join(root, "www", "dist");
const runs = args.length > 0 ? args : ["backend=cpu&runs=3&analysis=1"];
const timeout = Number(process.env.BENCH_TIMEOUT_MS ?? 15 * 60_000);
const port = Number(process.env.BENCH_PORT ?? 8766);

/** Starts www/serve.mjs on `port` for `dist`; resolves once it listens. */
async function serve() {
  const server = spawn(process.execPath, [join(root, "www", "serve.mjs"), dist], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((done, fail) => {
    server.stdout.on("data", (chunk) => String(chunk).includes("serve:") && done());
    server.on("exit", (code) => fail(new Error(`serve.mjs exited with ${code}`)));
  });
  return server;
}

/** One run of bench.html with `settings`, or of the page itself: its JSON result, or an error
 * object. */
async function measure(browser, settings) {
  if (settings.startsWith("index.html")) return pageReady(browser, settings);
  const page = await browser.newPage();
  page.on("console", (message) => message.type() === "error" && console.error(`[page] ${message.text()}`));
  const started = Date.now();
  try {
    const query = new URLSearchParams({ shape: "ViT-B/32", batch: "1", ...Object.fromEntries(new URLSearchParams(settings)), autorun: "1" });
    await page.goto(`http://127.0.0.1:${port}/bench.html?${query}`);
    await page.waitForFunction(() => document.body.dataset.done === "1", null, { timeout, polling: 1000 });
    const json = JSON.parse(await page.$eval("#result", (element) => element.textContent ?? "{}"));
    return { settings, wall_s: (Date.now() - started) / 1000, ...json };
  } catch (error) {
    return { settings, wall_s: (Date.now() - started) / 1000, error: error.name === "TimeoutError" ? `timeout after ${timeout} ms` : error.message };
  } finally {
    await page.close();
  }
}

/** The page at `address` in a fresh context: when it painted first and when it was ready with
 * the sample analysed (ms after it was opened), and what its header says ran. */
async function pageReady(browser, address) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (message) => message.type() === "error" && console.error(`[page] ${message.text()}`));
  try {
    await page.goto(`http://127.0.0.1:${port}/${address}`);
    await page.waitForFunction(() => ["ready", "error"].includes(document.querySelector("main")?.dataset.status ?? ""), null, { timeout, polling: 100 });
    const status = await page.$eval("main", (main) => main.dataset.status);
    if (status !== "ready") return { settings: address, error: await page.$eval("#error-message", (e) => e.textContent) };
    const mark = (name) => page.evaluate((n) => performance.getEntriesByName(n)[0]?.startTime ?? null, name);
    return { settings: address, backend: await page.$eval("#backend", (e) => e.textContent), first_contentful_paint_ms: await mark("first-contentful-paint"), ready_with_sample_analysed_ms: await mark("clip-lens-ready") };
  } catch (error) {
    return { settings: address, error: error.message };
  } finally {
    await context.close();
  }
}

const server = await serve();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  console.error(`chromium ${browser.version()}, site ${dist}`);
  for (const settings of runs) console.log(JSON.stringify(await measure(browser, settings)));
} finally {
  await browser.close();
  server.kill();
}

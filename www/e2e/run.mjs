// End-to-end checks of the built site (www/dist) in Debian's Chromium, driven by playwright-core:
// the site served by serve.mjs (and again without COOP/COEP headers, the service worker's
// case), a fresh page per check, any page error or Content-Security-Policy violation reported,
// a screenshot per check and the measured figures in $E2E_OUT (default ../target/e2e). The
// checks, by view: loading.mjs (backends, errors, caches, local files, threads, isolation),
// lab.mjs, explorer.mjs, lists.mjs, miner.mjs, build.mjs (a bundle built in the page), card.mjs
// (the embeddable card), export.mjs, keyboard.mjs, layout.mjs, accessibility.mjs (axe-core on every
// view) and bench.mjs; their helpers in
// harness.mjs.
// Usage: node e2e/run.mjs, or node e2e.mjs (after `npm run build`; CHROMIUM=/path/to/chromium
// to override, E2E_ONLY=image-queue,search to run only some checks).

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as accessibility from "./accessibility.mjs";
import * as bench from "./bench.mjs";
import * as build from "./build.mjs";
import * as card from "./card.mjs";
import * as explorer from "./explorer.mjs";
import * as exports from "./export.mjs";
import { out, plainPort, port, threadsBuilt, timings, www } from "./harness.mjs";
import * as keyboard from "./keyboard.mjs";
import * as lab from "./lab.mjs";
import * as layout from "./layout.mjs";
import * as lists from "./lists.mjs";
import * as loading from "./loading.mjs";
import * as map from "./map.mjs";
import * as miner from "./miner.mjs";

/** Every check, in the order they run. */
const checks = [loading, lab, explorer, lists, map, miner, build, card, exports, keyboard, layout, accessibility, bench].flatMap(
  (module) => module.checks,
);

/** E2E_ONLY=name,name runs only those checks (while working on them). */
const only = process.env.E2E_ONLY ? process.env.E2E_ONLY.split(",") : null;
const unknown = (only ?? []).filter((name) => !checks.some((c) => c.name === name));
if (unknown.length) {
  console.error(`e2e: E2E_ONLY names no check ${unknown.join(", ")} (the checks: ${checks.map((c) => c.name).join(", ")})`);
  process.exit(1);
}

await mkdir(out, { recursive: true });
// The site must have its threaded module (CLIP_LENS_PKG_THREADS when building): the CPU checks
// expect one thread per core. E2E_NO_THREADS=1 checks a site built without it.
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
/** Runs one check on a fresh page; its screenshot is named after it. */
async function runCheck({ name, run }) {
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

for (const c of checks) if (only === null || only.includes(c.name)) await runCheck(c);

await browser.close();
server.kill();
plainServer.kill();
await writeFile(join(out, "timings.json"), JSON.stringify(timings, null, 2));
console.log(`timings: ${JSON.stringify(timings)}`);
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${(r.ms / 1000).toFixed(1)} s)${r.error ? `: ${r.error}` : ""}`);
console.log(`screenshots: ${out}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

// End-to-end tests of the built site (www/dist) in Debian's Chromium, driven by playwright-core:
// the page loads to `data-status="ready"` on WebGPU and on the CPU, a broken weights address
// shows an error (not a blank page), and the embeddable neuron card renders from the bundle
// alone (and reports a bad neuron). Screenshots go to $E2E_OUT (default ../target/e2e).
// Usage: node e2e.mjs (after `npm run build`; CHROMIUM=/path/to/chromium to override).

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const www = dirname(fileURLToPath(import.meta.url));
const out = process.env.E2E_OUT ?? join(www, "..", "target", "e2e");
const port = Number(process.env.E2E_PORT ?? 8765);
const base = `http://127.0.0.1:${port}`;
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 300_000);

await mkdir(out, { recursive: true });
const server = spawn(process.execPath, [join(www, "serve.mjs")], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "inherit"] });
await new Promise((resolve, reject) => {
  server.stdout.on("data", (chunk) => String(chunk).includes("serve:") && resolve());
  server.on("exit", (code) => reject(new Error(`serve.mjs exited with ${code}`)));
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const results = [];
async function check(name, run) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const started = Date.now();
  try {
    await run(page);
    results.push({ name, ok: true, ms: Date.now() - started });
  } catch (error) {
    results.push({ name, ok: false, ms: Date.now() - started, error: `${error.message}${errors.length ? ` (page errors: ${errors.join("; ")})` : ""}` });
  } finally {
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true }).catch(() => {});
    await page.close();
  }
}

async function status(page, selector) {
  await page.waitForFunction((s) => ["ready", "error"].includes(document.querySelector(s)?.dataset.status ?? ""), selector, { timeout: TIMEOUT });
  return page.$eval(selector, (element) => ({ status: element.dataset.status, text: element.textContent ?? "" }));
}

for (const backend of ["webgpu", "cpu"]) {
  await check(`demo-${backend}`, async (page) => {
    await page.goto(`${base}/index.html?backend=${backend}`);
    const { status: s, text } = await status(page, "main");
    if (s !== "ready") throw new Error(`status ${s}: ${text.slice(0, 300)}`);
    const shown = await page.$eval("#backend", (e) => e.textContent ?? "");
    if (!shown.toLowerCase().includes(backend === "cpu" ? "cpu" : "webgpu")) throw new Error(`the page says the backend is “${shown}”`);
  });
}

await check("broken-weights", async (page) => {
  await page.goto(`${base}/index.html?weights=models/missing.safetensors&backend=cpu`);
  const { status: s, text } = await status(page, "main");
  if (s !== "error") throw new Error(`status ${s}, expected error`);
  if (!/404|missing|reach/i.test(text)) throw new Error(`the error does not say what is wrong: ${text.slice(0, 300)}`);
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

await browser.close();
server.kill();
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${(r.ms / 1000).toFixed(1)} s)${r.error ? `: ${r.error}` : ""}`);
console.log(`screenshots: ${out}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

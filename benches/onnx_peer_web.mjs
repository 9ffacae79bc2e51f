// Peer benchmark: the CLIP ViT-B/32 image tower on onnxruntime-web (WASM execution provider,
// SIMD, multi-threaded) in headless Chromium, to compare with our page's CPU forward on the
// same machine. Serves a blank cross-origin-isolated page (COOP/COEP, so ort-web may use
// threads), the ort-web dist files and the model; one fresh page per thread count; one
// untimed warm-up run, then RUNS timed runs of a [BATCH,3,224,224] input of ones. Prints a
// JSON line per thread count; "threads" is what ort-web actually used (it silently drops to 1
// without crossOriginIsolated) and "workers" counts the page's web workers (threads - 1).
//
// Usage (the model comes from benches/onnx_peer.py, ort-web from npm, outside the repo):
//   python3 benches/onnx_peer.py --save /tmp/ort/vit-b32.onnx
//   (cd /tmp/ort && npm init -y && npm install onnxruntime-web playwright-core)
//   node benches/onnx_peer_web.mjs --model /tmp/ort/vit-b32.onnx --ort /tmp/ort [--threads 1,2] [--batch 1] [--runs 10]
// playwright-core comes from www/node_modules, else from DIR. CHROMIUM overrides
// /usr/bin/chromium, BENCH_PORT the server's port (8777).

import { createReadStream, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values: opts } = parseArgs({
  options: {
    model: { type: "string" }, ort: { type: "string" },
    threads: { type: "string", default: "1,2" }, batch: { type: "string", default: "1" }, runs: { type: "string", default: "10" },
  },
});
if (!opts.model || !opts.ort) throw new Error("usage: node benches/onnx_peer_web.mjs --model PATH --ort DIR [--threads 1,2] [--batch 1] [--runs 10]");
const model = resolve(opts.model);
const dist = join(resolve(opts.ort), "node_modules", "onnxruntime-web", "dist");
const version = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8")).version;
const [batch, runs] = [Number(opts.batch), Number(opts.runs)];
const port = Number(process.env.BENCH_PORT ?? 8777);
const wwwPackage = join(root, "www", "package.json");
const { chromium } = createRequire(existsSync(join(root, "www", "node_modules", "playwright-core")) ? wwwPackage : join(resolve(opts.ort), "package.json"))("playwright-core");

// "/" is a blank page, "/model.onnx" the model, "/ort/NAME" a file of ort-web's dist.
const types = { ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const server = createServer((request, response) => {
  const path = new URL(request.url, "http://x").pathname;
  const file = path === "/" ? null : path === "/model.onnx" ? model : path.startsWith("/ort/") ? join(dist, basename(path)) : "";
  const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp", "Cross-Origin-Resource-Policy": "same-origin" };
  if (file === null) return response.writeHead(200, { ...headers, "Content-Type": "text/html" }).end(`<!doctype html><link rel="icon" href="data:,"><title>ort-web peer</title>`);
  if (!file || !existsSync(file)) return response.writeHead(404, headers).end();
  response.writeHead(200, { ...headers, "Content-Type": types[extname(file)] ?? "application/octet-stream" });
  createReadStream(file).pipe(response);
});
await new Promise((done) => server.listen(port, "127.0.0.1", done));

/** In the page: load ort-web, build the session, time `runs` runs; returns ms per image. */
async function inPage({ threads, batch, runs }) {
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create("/model.onnx", { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const data = new Float32Array(batch * 3 * 224 * 224).fill(1);
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, [batch, 3, 224, 224]) };
  await session.run(feeds);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await session.run(feeds);
    times.push((performance.now() - started) / batch);
  }
  return { crossOriginIsolated: self.crossOriginIsolated, threads: ort.env.wasm.numThreads, times };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  console.error(`chromium ${browser.version()}, onnxruntime-web ${version}, model ${model}`);
  for (const threads of opts.threads.split(",").map(Number)) {
    const page = await browser.newPage();
    page.on("console", (message) => ["error", "warning"].includes(message.type()) && console.error(`[page] ${message.text()}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    const result = await page.evaluate(inPage, { threads, batch, runs });
    const sorted = [...result.times].sort((a, b) => a - b);
    const median = sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    console.log(JSON.stringify({
      peer: "onnxruntime-web", version, threads: result.threads, batch, runs, cross_origin_isolated: result.crossOriginIsolated,
      workers: page.workers().length, median_ms_per_image: +median.toFixed(2), min_ms_per_image: +sorted[0].toFixed(2),
    }));
    if (result.threads !== threads) console.error(`asked for ${threads} threads, ort-web used ${result.threads}`);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}

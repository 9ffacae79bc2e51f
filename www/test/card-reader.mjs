// The embeddable neuron card's reader (src/neuron-card.ts, `loadNeuronCard`) run by Node over
// HTTP, as a blog post runs it: a bundle directory is served with range requests, and the card's
// data is printed as JSON with what the reader fetched, so that a test can compare it with
// `clip-lens describe --json` and check that it read by ranges, not whole files.
// Usage: node www/test/card-reader.mjs BUNDLE_DIR LAYER NEURON

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { join, normalize } from "node:path";
import { importSource } from "./import-source.mjs";

const [bundleDir, layer, neuron] = process.argv.slice(2);
if (!bundleDir || layer === undefined || neuron === undefined) {
  console.error("usage: node www/test/card-reader.mjs BUNDLE_DIR LAYER NEURON");
  process.exit(2);
}

/** What the server sent: requests, partial (206) answers and body bytes, per file. */
const served = {};

/** Serves `root` with single-range support (bytes=A-B), counting what it sends. */
function serveBundle(root) {
  return createServer(async (request, response) => {
    const name = decodeURIComponent(new URL(request.url, "http://localhost").pathname).replace(/^\/+/, "");
    const path = normalize(join(root, name));
    try {
      const bytes = await readFile(path);
      const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "");
      const entry = (served[name] ??= { requests: 0, partial: 0, bytes: 0, size: bytes.length });
      entry.requests += 1;
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(Number(range[2]), bytes.length - 1);
        const body = bytes.subarray(start, end + 1);
        entry.partial += 1;
        entry.bytes += body.length;
        response.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${bytes.length}`, "Content-Length": body.length });
        response.end(body);
      } else {
        entry.bytes += bytes.length;
        response.writeHead(200, { "Content-Length": bytes.length });
        response.end(bytes);
      }
    } catch {
      response.writeHead(404);
      response.end();
    }
  });
}

// The card module defines a custom element when it loads: Node has no DOM, so the two globals
// that module evaluation touches are stand-ins (the reader itself uses only fetch).
globalThis.HTMLElement ??= class {};
globalThis.customElements ??= { get: () => undefined, define: () => {} };

const module = await importSource("neuron-card.ts", { logLevel: "silent" });

await stat(join(bundleDir, "manifest.json"));
const server = serveBundle(bundleDir);
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
try {
  const base = `http://127.0.0.1:${server.address().port}/`;
  const card = await module.loadNeuronCard(base, Number(layer), Number(neuron));
  console.log(JSON.stringify({ card, served }));
} finally {
  server.close();
}

// The embeddable neuron card (card.html, <clip-lens-neuron>): from the bundle alone, its error
// for a bad neuron, and on another, cross-origin isolated origin beside the explorer in an
// iframe.

import { createServer } from "node:http";
import { base, check, checkHeadGrid, port, ready, status } from "./harness.mjs";

/** The checks, in the order they run. */
export const checks = [
  check("neuron-card", async (page) => {
    await page.goto(`${base}/card.html?layer=1&neuron=4`);
    const { status: s } = await status(page, "clip-lens-neuron");
    if (s !== "ready") throw new Error(`card status ${s}`);
    const bars = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.querySelectorAll("li").length ?? 0);
    if (bars < 1) throw new Error("the card shows no words");
    // Format 5: its heads grid and its neighbours, read by range requests too.
    await checkHeadGrid(page, "clip-lens-neuron .head-grid", 1);
    const neighbours = await page.$eval("clip-lens-neuron .neighbours", (p) => p.textContent ?? "");
    if (!/^Neighbours: \d+ \(-?\d\.\d\d(: [^)]+)?\)(, \d+ \(-?\d\.\d\d(: [^)]+)?\))*$/.test(neighbours))
      throw new Error(`the card's neighbours: ${neighbours}`);
  }),

  check("neuron-card-error", async (page) => {
    await page.goto(`${base}/card.html?layer=1&neuron=99999`);
    const { status: s, text } = await status(page, "clip-lens-neuron");
    const message = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.textContent ?? "");
    if (s !== "error" || !message.includes("out of range")) throw new Error(`status ${s}: ${message || text}`);
  }),

  check("embedded-on-another-origin", async (page) => {
    // A page on another origin, itself cross-origin isolated (COEP require-corp, the strictest
    // embedder), shows the neuron card from this site and the explorer in an iframe.
    const hostPage = `<!doctype html><meta charset="utf-8"><title>A blog post</title>
<script type="module" src="${base}/neuron-card.js"></script>
<clip-lens-neuron bundle="${base}/models/tiny/bundle" layer="1" neuron="4"></clip-lens-neuron>
<iframe src="${base}/index.html?embed=1&backend=cpu#/neuron/1/4" width="720" height="900" title="clip-lens"></iframe>`;
    const host = createServer((request, response) => {
      response.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
      });
      response.end(hostPage);
    });
    await new Promise((resolve) => host.listen(port + 2, "127.0.0.1", resolve));
    try {
      await page.goto(`http://127.0.0.1:${port + 2}/post.html`);
      const { status: s, text } = await status(page, "clip-lens-neuron");
      const words = await page.$$eval("clip-lens-neuron", (cards) => cards[0]?.shadowRoot?.querySelectorAll("li").length ?? 0);
      if (s !== "ready" || words < 1) throw new Error(`card: ${s} with ${words} words: ${text.slice(0, 300)}`);
      // Its thumbnails (images from this site under the embedder's require-corp: CORP admits them).
      const thumbnailsLoaded = () => {
        const images = [...(document.querySelector("clip-lens-neuron")?.shadowRoot?.querySelectorAll("img") ?? [])];
        return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
      };
      await page.waitForFunction(thumbnailsLoaded, null, { timeout: 30_000 }).catch(() => {
        throw new Error("the card's thumbnails did not load");
      });
      const frame = page.frames().find((f) => f.url().startsWith(`${base}/index.html`));
      if (!frame) throw new Error("the iframe did not load");
      await ready(frame, "#neuron-card");
    } finally {
      host.close();
    }
  }),
];

// Downloads: the lab's analysis (JSON with its ablations, CSV) and heatmap (PNG); a card's JSON
// and CSV and an activation map (PNG).

import { ablate, check, download, go, openLab, ready, TIMEOUT } from "./harness.mjs";

/** The checks, in the order they run. */
export const checks = [
  check("export", async (page) => {
    await openLab(page);
    await ablate(page, "#ablate-layer-form button[data-kind=significant]");
    // The analysis, with its ablation.
    const json = await download(page, "#lab-export button:nth-child(1)");
    const analysis = JSON.parse(json.bytes.toString("utf8"));
    if (
      json.name !== "analysis.json" ||
      !Array.isArray(analysis.analysis?.classes) ||
      analysis.ablations?.length !== 1 ||
      !analysis.ablations[0].after
    )
      throw new Error(`${json.name}: ${json.bytes.toString("utf8").slice(0, 300)}`);
    const csv = await download(page, "#lab-export button:nth-child(2)");
    const csvLines = csv.bytes.toString("utf8").split("\n");
    if (csv.name !== "analysis.csv" || csvLines[0] !== "section,variant,layer,neuron,rank,label,value" || csvLines.length < 10)
      throw new Error(`${csv.name}: ${csvLines.slice(0, 3).join(" / ")}`);
    const png = await download(page, "#lab-export button:nth-child(3)");
    const concept = await page.$eval("#lab-result", (e) => e.dataset.concept);
    const expectedPng = `heatmap-${concept
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, "-")
      .replace(/^-+|-+$/g, "")}.png`;
    if (
      png.name !== expectedPng ||
      !png.bytes.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])) ||
      png.bytes.length < 200
    )
      throw new Error(`${png.name} (expected ${expectedPng}), ${png.bytes.length} bytes`);
    // A card: JSON, CSV, and an activation map as PNG.
    await go(page, "#/neuron/1/4");
    await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 4", null, {
      timeout: TIMEOUT,
    });
    await ready(page, "#neuron-card");
    const card = await download(page, "#neuron-card .card-actions .download-button >> nth=0");
    const parsed = JSON.parse(card.bytes.toString("utf8"));
    const keys = ["layer", "neuron", "words", "threshold", "top_images", "classes", "distribution", "analysed_norm"];
    if (card.name !== "neuron-1-4.json" || !keys.every((k) => k in parsed) || parsed.layer !== 1 || parsed.neuron !== 4)
      throw new Error(`${card.name}: keys ${Object.keys(parsed)}`);
    const cardCsv = await download(page, "#neuron-card .card-actions .download-button >> nth=1");
    const cardLines = cardCsv.bytes.toString("utf8").split("\n");
    if (
      cardCsv.name !== "neuron-1-4.csv" ||
      cardLines[0] !== "layer,neuron,field,index,label,value" ||
      !cardLines.some((l) => l.startsWith("1,4,word,"))
    )
      throw new Error(`${cardCsv.name}: ${cardLines.slice(0, 3).join(" / ")}`);
    await page.waitForFunction(() => /drawn/.test(document.querySelector("#neuron-card .map-status")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
    const map = await download(page, "#neuron-card .top-images .download-button >> nth=0");
    if (!/^heatmap-1-4-image-\d+\.png$/.test(map.name) || !map.bytes.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])))
      throw new Error(`activation map: ${map.name}`);
  }),
];

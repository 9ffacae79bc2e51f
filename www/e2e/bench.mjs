// The benchmark page: ViT-B/32 with random weights on the CPU, the matrix-product probe and one
// block's steps.

import { base, check, expectedThreads, timings, TIMEOUT } from "./harness.mjs";

/** The checks, in the order they run. */
export const checks = [
  check("benchmark-page-cpu", async (page) => {
    // ViT-B/32 with random weights and a synthetic bundle of the paper's sizes, on flex in wasm,
    // and the matrix-product probe (3 products at batch 1 and 8, a table row each).
    await page.goto(`${base}/bench.html?shape=ViT-B/32&backend=cpu&batch=1&runs=1&analysis=1&probe=1&autorun=1`);
    await page.waitForFunction(() => document.body.dataset.done === "1", null, { timeout: TIMEOUT });
    const status = await page.$eval("main", (e) => e.dataset.status);
    const result = JSON.parse(await page.$eval("#result", (e) => e.textContent));
    if (status !== "done" || !(result.analysis?.analysis_ms_per_image > 0) || !(result.analysis?.segmentation_ms > 0))
      throw new Error(`bench: ${status}: ${JSON.stringify(result).slice(0, 400)}`);
    const { threads } = await expectedThreads(page);
    if (result.threads !== threads || result.matmul?.threads !== threads)
      throw new Error(`bench ran on ${result.threads} threads, not ${threads}`);
    // (each shape twice on the CPU: burn's matmul and the packed kernel the forward uses)
    const products = result.matmul?.timings ?? [];
    const shapes = products.map((t) => `${t.kernel}:${t.m}x${t.k}x${t.n}`).join(" ");
    const expected = ["50x768x2304", "50x768x3072", "50x3072x768", "400x768x2304", "400x768x3072", "400x3072x768"]
      .flatMap((s) => [`matmul:${s}`, `packed:${s}`])
      .join(" ");
    if (shapes !== expected || !products.every((t) => t.gflops > 0)) throw new Error(`probe: ${JSON.stringify(result.matmul)}`);
    const rows = await page.$$eval("#matmul tbody tr", (r) => r.length);
    if (rows !== 12) throw new Error(`the probe's table has ${rows} rows, not 12`);
    // ... and one block's eleven steps, the whole block last.
    const steps = (result.steps ?? []).map((s) => s.step);
    // (each step timed for at least 20 ms, so even a layer norm reads above the clock's 0.1 ms grain)
    if (steps.length !== 11 || steps[10] !== "whole block" || !result.steps.every((s) => s.ms > 0))
      throw new Error(`steps: ${JSON.stringify(result.steps)}`);
    const stepRows = await page.$$eval("#steps tbody tr", (r) => r.length);
    if (stepRows !== 11) throw new Error(`the steps table has ${stepRows} rows, not 11`);
    timings["bench-vit-b-32-cpu"] = result;
  }),
];

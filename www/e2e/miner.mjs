// The adversarial miner: spurious words, descriptions, and test images' success rate.

import { join } from "node:path";
import { base, check, ready, TIMEOUT, www } from "./harness.mjs";

/** The checks, in the order they run. */
export const checks = [
  check("adversarial-miner", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu#/miner`);
    await ready(page, "main");
    await ready(page, "#miner-result");
    const rows = await page.$$eval("#miner-result tbody tr", (items) => items.length);
    const descriptions = await page.$$eval("#miner-result .description", (items) => items.map((item) => item.textContent));
    if (rows < 1 || descriptions.length < 1) throw new Error(`${rows} words, ${descriptions.length} descriptions`);
    await page.setInputFiles("#miner-file", [join(www, "samples", "cat.jpg"), join(www, "samples", "coffee.jpg")]);
    await page.waitForFunction(() => /Success rate: \d+ of 2/.test(document.querySelector("#miner-summary")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
  }),
];

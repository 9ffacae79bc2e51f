// Layout: embed mode (the view alone, for an iframe) and a phone-sized screen.

import { base, check, ready } from "./harness.mjs";

/** The checks, in the order they run. */
export const checks = [
  check("embed-mode", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu&embed=1#/neuron/2/17`);
    await ready(page, "#neuron-card");
    if (await page.isVisible(".site-header")) throw new Error("the header shows in embed mode");
  }),

  check("phone-layout", async (page) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the page is ${overflow} px wider than a phone's screen`);
  }),
];

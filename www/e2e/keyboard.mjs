// The lab's neuron controls, the ablation panel, a card and the list view from the keyboard,
// and every such control with an accessible name.

import { check, go, openLab, ready, TIMEOUT } from "./harness.mjs";

/** Presses Tab until `selector` has the focus (at most `max` presses). */
async function tabTo(page, selector, max = 400) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

/** The new controls without an accessible name (aria-label, a <label>, or their text). */
async function unnamedControls(page) {
  return page.$$eval(
    ".ablate-one, .ablate-select, .steer-slider, .distribution-toggle, .heads-toggle, .download-button, .list-button, #ablate-neurons, #steer-neurons, #ablate-layer, #ablate-layer-form button, #list-spec, #list-copy, #list-copy-field, svg.histogram",
    (items) =>
      items
        .filter((e) => !(e.getAttribute("aria-label") || e.labels?.length || e.textContent.trim()))
        .map((e) => e.outerHTML.slice(0, 120)),
  );
}

/** The checks, in the order they run. */
export const checks = [
  check("keyboard", async (page) => {
    await openLab(page);
    // Open the first layer's neurons with Enter, tick a neuron with Space, ablate it with Enter,
    // open a distribution with Space.
    await tabTo(page, "#lab-neurons summary");
    await page.keyboard.press("Enter");
    await tabTo(page, ".ablate-select");
    await page.keyboard.press("Space");
    if (!(await page.inputValue("#ablate-neurons"))) throw new Error("Space did not tick the neuron");
    await tabTo(page, ".ablate-one");
    await page.keyboard.press("Enter");
    await ready(page, "#ablation-result");
    await page.focus("#lab-neurons a");
    await tabTo(page, ".distribution-toggle");
    await page.keyboard.press("Space");
    await ready(page, ".neuron-distribution:not([hidden])");
    // The layer's buttons (past the layers' hundreds of neuron rows: from the exports).
    await page.focus("#lab-export button");
    await tabTo(page, "#ablate-layer-form button[data-kind=rank-one]", 20);
    await page.keyboard.press("Enter");
    await ready(page, "#ablation-result");
    if (!/rank/i.test(await page.textContent("#ablation-result .ablation-summary"))) throw new Error("Enter on rank one did not ablate");
    const missing = await unnamedControls(page);
    // A card: add to the list with Enter, download with Enter.
    await go(page, "#/neuron/1/4");
    await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 1, neuron 4", null, {
      timeout: TIMEOUT,
    });
    await ready(page, "#neuron-card");
    await page.focus("#search-input");
    await tabTo(page, "#neuron-card .list-button");
    await page.keyboard.press("Enter");
    if ((await page.getAttribute("#neuron-card .list-button", "aria-pressed")) !== "true")
      throw new Error("Enter did not add the card to the list");
    await tabTo(page, "#neuron-card .download-button");
    const [file] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.keyboard.press("Enter")]);
    if (file.suggestedFilename() !== "neuron-1-4.json") throw new Error(`Enter downloaded ${file.suggestedFilename()}`);
    // The list view's controls.
    await go(page, "#/list/1:4,1:5");
    await ready(page, "#list-cards");
    missing.push(...(await unnamedControls(page)));
    if (missing.length) throw new Error(`controls without a name: ${missing.join(" | ")}`);
    const histogram = await page.$eval("#list-cards svg.histogram", (svg) => ({
      role: svg.getAttribute("role"),
      label: svg.getAttribute("aria-label"),
    }));
    if (histogram.role !== "img" || !histogram.label)
      throw new Error(`the histogram has no text alternative: ${JSON.stringify(histogram)}`);
  }),
];

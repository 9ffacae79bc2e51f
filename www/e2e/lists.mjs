// Lists of neurons: cards side by side with their shared words, the copied link (and its
// fallback), "add to list" and the visitor's kept list; bad lists.

import { base, check, go, ready, status, TIMEOUT } from "./harness.mjs";

/** The first word of the card of `layer`/`neuron` (a word of the demo's dictionary). */
async function cardWord(page, layer, neuron) {
  await go(page, `#/neuron/${layer}/${neuron}`);
  await page.waitForFunction((t) => document.querySelector("#card-title")?.textContent === t, `Layer ${layer}, neuron ${neuron}`, {
    timeout: TIMEOUT,
  });
  await ready(page, "#neuron-card");
  return page.$eval("#neuron-card .word-bars li a", (a) => a.textContent);
}

/** The checks, in the order they run. */
export const checks = [
  check("list", async (page) => {
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    await page.goto(`${base}/index.html?backend=cpu#/neuron/1/4`);
    await ready(page, "#neuron-card");
    // Neurons that share a word: those of a word's page.
    const word = await cardWord(page, 1, 4);
    await go(page, `#/word/${encodeURIComponent(word)}`);
    await ready(page, "#word-result");
    const keys = (await page.$$eval(".word-page-neuron", (items) => items.map((li) => li.dataset.neuron))).slice(0, 3);
    if (keys.length < 2) keys.push(keys[0] === "0:1" ? "0:2" : "0:1");
    await go(page, `#/list/${keys.join(",")}`);
    await ready(page, "#list-cards");
    const cards = await page.$$eval(".compact-card", (items) =>
      items.map((card) => ({
        key: card.dataset.neuron,
        box: card.getBoundingClientRect().toJSON(),
        histogram: card.querySelector("svg.histogram") !== null,
        thumbnails: card.querySelectorAll(".thumb-strip img").length,
        shared: card.querySelectorAll(".score-row.shared").length,
      })),
    );
    if (cards.map((c) => c.key).join(",") !== keys.join(",")) throw new Error(`cards ${cards.map((c) => c.key)} for ${keys}`);
    if (!(Math.abs(cards[0].box.y - cards[1].box.y) < 2 && cards[1].box.x > cards[0].box.x))
      throw new Error(`not side by side: ${JSON.stringify(cards.map((c) => c.box))}`);
    if (!cards.every((c) => c.histogram && c.thumbnails > 0)) throw new Error(`compact cards: ${JSON.stringify(cards)}`);
    const shared = await page.$$eval(".shared-summary .word-link.shared", (links) => links.map((a) => a.textContent));
    if (keys.length >= 2 && cards.filter((c) => c.shared > 0).length < 2 && shared.length > 0)
      throw new Error(`shared words ${shared} are not highlighted in the cards`);
    if (!shared.includes(word) && (await page.$$eval(".word-page-neuron", (items) => items.length)) >= 2)
      throw new Error(`“${word}” is not among the shared words ${shared}`);
    // Copy link: the clipboard, then the field where the clipboard is refused.
    const url = await page.evaluate(() => location.href);
    await page.click("#list-copy");
    await page.waitForFunction(() => /copied/i.test(document.querySelector("#list-copy-status")?.textContent ?? ""), null, {
      timeout: 10_000,
    });
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (copied !== url) throw new Error(`copied “${copied}”, expected ${url}`);
    await page.evaluate(() => (navigator.clipboard.writeText = () => Promise.reject(new Error("refused"))));
    await page.click("#list-copy");
    await page.waitForSelector("#list-copy-field:not([hidden])", { timeout: 10_000 });
    const field = await page.inputValue("#list-copy-field");
    if (field !== url) throw new Error(`the fallback field says “${field}”, expected ${url}`);
    // "Add to list" on a card: the header counts it and links to it.
    await go(page, "#/neuron/2/17");
    await page.waitForFunction(() => document.querySelector("#card-title")?.textContent === "Layer 2, neuron 17", null, {
      timeout: TIMEOUT,
    });
    await ready(page, "#neuron-card");
    await page.click("#neuron-card .list-button");
    if ((await page.getAttribute("#neuron-card .list-button", "aria-pressed")) !== "true")
      throw new Error("the card's list button is not pressed");
    if ((await page.textContent("#list-count")) !== "1") throw new Error(`the header counts ${await page.textContent("#list-count")}`);
    await page.click("#list-link");
    await ready(page, "#list-cards");
    const listed = await page.$$eval(".compact-card", (items) => items.map((card) => card.dataset.neuron));
    if (listed.join(",") !== "2:17") throw new Error(`my list shows ${listed}`);
    // It is kept: a reload shows the same list.
    await page.reload();
    await ready(page, "#list-cards");
    if ((await page.textContent("#list-count")) !== "1") throw new Error("the list was not kept");
    await go(page, `#/list/${keys.join(",")}`); // the screenshot: the cards side by side
    await ready(page, "#list-cards");
  }),

  check("list-bad", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu#/list/0:1,99:2`);
    const unknown = await status(page, "#list-cards");
    if (unknown.status !== "error" || !unknown.text.includes("99")) throw new Error(`#/list/0:1,99:2: ${JSON.stringify(unknown)}`);
    await go(page, "#/list/0:99999");
    await page.waitForFunction(() => /99999/.test(document.querySelector("#list-cards")?.textContent ?? ""), null, { timeout: TIMEOUT });
    const range = await status(page, "#list-cards");
    if (range.status !== "error") throw new Error(`#/list/0:99999: ${JSON.stringify(range)}`);
    await go(page, "#/list/garbage");
    await page.waitForFunction(() => /garbage/.test(document.querySelector("#list-cards")?.textContent ?? ""), null, { timeout: TIMEOUT });
    const garbage = await status(page, "#list-cards");
    if (garbage.status !== "error") throw new Error(`#/list/garbage: ${JSON.stringify(garbage)}`);
    if ((await page.$eval("main", (e) => e.dataset.status)) !== "ready") throw new Error("a bad list stopped the page");
  }),
];

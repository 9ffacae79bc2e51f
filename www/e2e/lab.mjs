// The image lab: ?image=&concept= links and another concept (the mask view), paste and the
// camera, the image queue (50 dropped images, cancel; no freezing or leaks), stopping a running
// analysis, a significant neuron's distribution with the image's norm marked and its heads on
// the image, and ablations.

import {
  ablate,
  base,
  check,
  checkHeadGrid,
  checkHistogram,
  checkLab,
  go,
  gradientPng,
  openLab,
  openNeuronLists,
  overlayStats,
  ready,
  status,
  timings,
  TIMEOUT,
} from "./harness.mjs";

/** Drops files (names in www/samples, or {name, type, base64}) on `selector` as a drag and drop
 * from the desktop does: dragenter, dragover and drop events carrying them. */
async function dropFiles(page, selector, files) {
  await page.evaluate(
    async ({ selector, files }) => {
      const transfer = new DataTransfer();
      for (const file of files) {
        const blob =
          typeof file === "string"
            ? await (await fetch(`samples/${file}`)).blob()
            : new Blob([Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))], { type: file.type });
        transfer.items.add(new File([blob], typeof file === "string" ? file : file.name, { type: blob.type }));
      }
      const target = document.querySelector(selector);
      for (const type of ["dragenter", "dragover", "drop"])
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
    },
    { selector, files },
  );
}

/** Counts the page's live object URLs and records main-thread long tasks (installed before the
 * page's scripts run). */
async function watchMainThread(page) {
  await page.addInitScript(() => {
    const live = new Set();
    const create = URL.createObjectURL.bind(URL);
    const revoke = URL.revokeObjectURL.bind(URL);
    URL.createObjectURL = (object) => {
      const url = create(object);
      live.add(url);
      return url;
    };
    URL.revokeObjectURL = (url) => {
      live.delete(url);
      revoke(url);
    };
    window.__liveObjectUrls = () => live.size;
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((entry) => entry.duration))).observe({
      type: "longtask",
      buffered: true,
    });
  });
}

/** The page's JS heap after a garbage collection, its live object URLs and the engine's wasm
 * memory (the lab's `data-wasm-bytes`, refreshed after each analysis). */
async function memory(page, cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  return {
    js_heap_mb: metrics.find((m) => m.name === "JSHeapUsedSize").value / 2 ** 20,
    live_object_urls: await page.evaluate(() => window.__liveObjectUrls()),
    wasm_mb: Number(await page.$eval("#lab-result", (e) => e.dataset.wasmBytes ?? "0")) / 2 ** 20,
  };
}

const queueStates = (page) => page.$$eval(".queue-item", (items) => items.map((item) => item.dataset.state));

/** Throws unless an ablation's result shows both sides and changed something. */
function expectChange(result, what) {
  const same = JSON.stringify(result.before) === JSON.stringify(result.after);
  if (result.before.classes.length < 1 || result.after.classes.length < 1)
    throw new Error(`${what}: no classes: ${JSON.stringify(result)}`);
  if (same && !(result.shift > 0)) throw new Error(`${what}: nothing changed: ${JSON.stringify(result)}`);
}

/** The checks, in the order they run. */
export const checks = [
  check("image-and-concept-link", async (page) => {
    await openLab(page, "&image=samples/horse.png&concept=a%20horse");
    const concept = await page.$eval("#lab-result", (e) => e.dataset.concept);
    const caption = await page.$eval("#lab-caption", (e) => e.textContent);
    if (concept !== "a horse" || caption !== "horse.png") throw new Error(`concept ${concept}, image ${caption}`);
    // Another concept, then the mask view.
    await page.fill("#concept-input", "predicted");
    await page.click("#concept-form button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#lab-result")?.dataset.concept !== "a horse", null, { timeout: TIMEOUT });
    await ready(page, "#lab-result");
    await page.check("#mask-toggle");
    const mask = await overlayStats(page, "#lab-overlay");
    if (mask.opaque === 0) throw new Error("the mask view draws nothing");
  }),

  check("paste-and-camera", async (page) => {
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    // Paste an image (what Ctrl+V with an image on the clipboard delivers).
    await page.evaluate(async () => {
      const blob = await (await fetch("samples/horse.png")).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], "pasted.png", { type: "image/png" }));
      document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
    });
    await page.waitForFunction(() => document.querySelector("#lab-caption")?.textContent === "pasted.png", null, { timeout: TIMEOUT });
    await checkLab(page);
    // The camera: open the preview, take the snapshot.
    await page.click("#camera-button");
    await page.waitForFunction(() => (document.querySelector("#camera video")?.videoWidth ?? 0) > 0, null, { timeout: TIMEOUT });
    await page.click("#camera-button");
    await page.waitForFunction(() => /^camera snapshot/.test(document.querySelector("#lab-caption")?.textContent ?? ""), null, {
      timeout: TIMEOUT,
    });
    await checkLab(page);
  }),

  check("image-queue", async (page) => {
    // 50 dropped images: the waiting ones cancelled; then 50 more, all analysed. The page must
    // stay responsive (main-thread long tasks) and not leak (object URLs, JS heap, wasm memory).
    await watchMainThread(page);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    const names = Array.from({ length: 50 }, (_, i) => ["cat.jpg", "coffee.jpg", "rocket.jpg", "horse.png", "astronaut.jpg"][i % 5]);
    await page.evaluate(() => (window.__longTasks.length = 0));
    await dropFiles(page, "#lab-drop", names);
    await page.click("#queue-cancel", { timeout: 5000 });
    await page.waitForFunction(
      () => [...document.querySelectorAll(".queue-item")].every((item) => !["queued", "running"].includes(item.dataset.state)),
      null,
      { timeout: TIMEOUT },
    );
    const states = await queueStates(page);
    const count = (state) => states.filter((s) => s === state).length;
    if (states.length !== 50 || count("cancelled") === 0 || count("done") === 0 || count("error") > 0)
      throw new Error(`queue states: ${JSON.stringify(states)}`);
    await ready(page, "#lab-result");
    const first = await memory(page, cdp);
    // A new batch once that one is over: a new queue, analysed to the end.
    const started = Date.now();
    await dropFiles(page, "#lab-drop", names);
    await page.waitForFunction(
      () => {
        const items = [...document.querySelectorAll(".queue-item")];
        return items.length === 50 && items.every((item) => item.dataset.state === "done");
      },
      null,
      { timeout: TIMEOUT },
    );
    await ready(page, "#lab-result");
    const seconds = (Date.now() - started) / 1000;
    const second = await memory(page, cdp);
    const longTasks = await page.evaluate(() => window.__longTasks);
    timings["image-queue"] = {
      first_batch: first,
      after_50_more: second,
      seconds_for_50: seconds,
      main_thread_long_tasks: longTasks.length,
      longest_task_ms: Math.max(0, ...longTasks),
    };
    // The queue keeps one object URL per image (to show it again) and the shown image's.
    if (second.live_object_urls > 51)
      throw new Error(`${second.live_object_urls} live object URLs after two batches of 50: the first batch's leaked`);
    if (second.js_heap_mb - first.js_heap_mb > 24)
      throw new Error(`the JS heap grew by ${(second.js_heap_mb - first.js_heap_mb).toFixed(1)} MB over 50 images`);
    if (!(second.wasm_mb > 0) || second.wasm_mb - first.wasm_mb > 16)
      throw new Error(`wasm memory ${first.wasm_mb} MB, then ${second.wasm_mb} MB after 50 images`);
    if (Math.max(0, ...longTasks) > 1000)
      throw new Error(`the page froze: main-thread tasks of ${longTasks.map(Math.round).join(", ")} ms`);
  }),

  check("stop-running-analysis", async (page) => {
    // A photo large enough that its analysis (decoding, mostly) runs for seconds: once to the end,
    // then stopped half a second in. Stop must act at once, and the engine must work afterwards.
    await page.goto(`${base}/index.html?backend=cpu`);
    await ready(page, "main");
    const big = { name: "huge.png", type: "image/png", base64: gradientPng(8000, 8000).toString("base64") };
    const started = Date.now();
    await dropFiles(page, "#lab-drop", [big]);
    await page.waitForFunction(() => document.querySelector("#lab-caption")?.textContent === "huge.png", null, { timeout: TIMEOUT });
    await ready(page, "#lab-result");
    const fullSeconds = (Date.now() - started) / 1000;
    await dropFiles(page, "#lab-drop", ["cat.jpg", big, "horse.png"]);
    await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "running", null, {
      timeout: TIMEOUT,
    });
    // The button shows after half a second (a quick analysis never flashes it) beside a status
    // line that changes as the queue runs: pressed once visible, wherever the line puts it.
    await page.waitForSelector("#lab-stop", { state: "visible", timeout: 5000 });
    await page.$eval("#lab-stop", (button) => button.click());
    const clicked = Date.now();
    await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(2)")?.dataset.state === "cancelled", null, {
      timeout: TIMEOUT,
    });
    const stopSeconds = (Date.now() - clicked) / 1000;
    // The queue goes on with the next image, on the restarted engine.
    await page.waitForFunction(() => document.querySelector(".queue-item:nth-child(3)")?.dataset.state === "done", null, {
      timeout: TIMEOUT,
    });
    await checkLab(page);
    timings["stop-running-analysis"] = { full_analysis_s: fullSeconds, stopped_after_s: stopSeconds };
    if (fullSeconds < 1.5) throw new Error(`the large image took only ${fullSeconds} s: the stop is not tested`);
    if (stopSeconds > 1) throw new Error(`the stop took ${stopSeconds} s (the analysis takes ${fullSeconds} s)`);
  }),

  check("lab-histogram-marks-image", async (page) => {
    await openLab(page);
    await openNeuronLists(page);
    const row = await page.$eval("#lab-neurons .significant-neuron", (li) => ({
      key: li.dataset.neuron,
      norm: Number(/ (\d+\.\d+) >/.exec(li.textContent)?.[1]),
    }));
    await page.click(`.significant-neuron[data-neuron="${row.key}"] .distribution-toggle`);
    await ready(page, `.significant-neuron[data-neuron="${row.key}"] .neuron-distribution`);
    const marks = await checkHistogram(page, `.significant-neuron[data-neuron="${row.key}"]`);
    const analysed = marks.find((m) => m.kind === "analysed");
    if (!analysed || Math.abs(analysed.value - row.norm) > 0.01 + 0.01 * row.norm)
      throw new Error(`neuron ${row.key} (norm ${row.norm}): marks ${JSON.stringify(marks)}`);
    const threshold = marks.find((m) => m.kind === "threshold");
    if (!(analysed.value > threshold.value))
      throw new Error(`a significant neuron's norm ${analysed.value} is not above its threshold ${threshold.value}`);
    // Its card in the explorer marks the same image.
    const [layer, neuron] = row.key.split(":");
    await go(page, `#/neuron/${layer}/${neuron}`);
    await page.waitForFunction((t) => document.querySelector("#card-title")?.textContent === t, `Layer ${layer}, neuron ${neuron}`, {
      timeout: TIMEOUT,
    });
    await ready(page, "#neuron-card");
    const cardMarks = await checkHistogram(page, "#neuron-card");
    if (!cardMarks.some((m) => m.kind === "analysed" && Math.abs(m.value - analysed.value) < 1e-6))
      throw new Error(`the card's marks: ${JSON.stringify(cardMarks)}`);
    await go(page, "#/lab"); // the screenshot: the lab with the distribution open
  }),

  check("lab-heads", async (page) => {
    // A significant neuron's "Heads" button: its later heads on this image, under the neuron.
    await openLab(page);
    await openNeuronLists(page);
    const key = await page.$eval("#lab-neurons .significant-neuron", (li) => li.dataset.neuron);
    const row = `.significant-neuron[data-neuron="${key}"]`;
    await page.click(`${row} .heads-toggle`);
    await ready(page, `${row} .neuron-heads`);
    if ((await page.getAttribute(`${row} .heads-toggle`, "aria-expanded")) !== "true") throw new Error("the Heads button is not expanded");
    const shown = await checkHeadGrid(page, `${row} .neuron-heads .head-grid`, Number(key.split(":")[0]));
    if (!/on this image/.test(shown.caption)) throw new Error(`the lab's grid says “${shown.caption}”`);
    // Pressed again, it hides the grid; a third time shows it without asking the engine again.
    await page.click(`${row} .heads-toggle`);
    if (!(await page.$eval(`${row} .neuron-heads`, (panel) => panel.hidden))) throw new Error("the Heads button did not hide the grid");
    await page.click(`${row} .heads-toggle`);
    await page.$eval(`${row} .neuron-heads`, (panel) => panel.scrollIntoView()); // the screenshot: the grid under its neuron
  }),

  check("ablation", async (page) => {
    await openLab(page);
    await openNeuronLists(page);
    // One significant neuron.
    const key = await page.$eval("#lab-neurons .significant-neuron", (li) => li.dataset.neuron);
    const one = await ablate(page, `.ablate-one[data-neuron="${key}"]`);
    if (!one.summary.includes(key) || !(one.shift > 0)) throw new Error(`one neuron: ${JSON.stringify(one)}`);
    // The deepest layer's significant neurons, then its insignificant ones, then rank one.
    const significant = await ablate(page, "#ablate-layer-form button[data-kind=significant]");
    expectChange(significant, "significant");
    const insignificant = await ablate(page, "#ablate-layer-form button[data-kind=insignificant]");
    expectChange(insignificant, "insignificant");
    const rankOne = await ablate(page, "#ablate-layer-form button[data-kind=rank-one]");
    if (!/rank/i.test(rankOne.summary)) throw new Error(`rank one: ${JSON.stringify(rankOne)}`);
    // A ticked set: the field lists the ticked neurons.
    const boxes = await page.$$eval(".ablate-select", (items) => items.slice(0, 2).map((box) => box.dataset.neuron));
    for (const neuron of boxes) await page.check(`.ablate-select[data-neuron="${neuron}"]`);
    const typed = await page.inputValue("#ablate-neurons");
    if (typed !== boxes.join(",")) throw new Error(`ticked ${boxes.join(",")}, the field says “${typed}”`);
    const set = await ablate(page, "#ablate-neurons-form button[type=submit]");
    if (!set.summary.includes(`${boxes.length} neuron`)) throw new Error(`the set: ${JSON.stringify(set)}`);
    // A bad set: the engine's message, in the page.
    await page.fill("#ablate-neurons", "99:1");
    await page.click("#ablate-neurons-form button[type=submit]");
    const bad = await status(page, "#ablation-result");
    if (bad.status !== "error" || !bad.text.includes("99")) throw new Error(`bad set: ${JSON.stringify(bad)}`);
    await ablate(page, "#ablate-layer-form button[data-kind=significant]"); // the screenshot shows a result
  }),

  check("steering", async (page) => {
    await openLab(page);
    await openNeuronLists(page);
    // Two significant neurons' sliders moved (each change steers at once): the field lists both
    // factors, the result names both, and the embedding moved.
    const keys = await page.$$eval(".steer-slider", (items) => items.slice(0, 2).map((slider) => slider.dataset.neuron));
    if (keys.length < 2) throw new Error(`${keys.length} steering sliders`);
    const slide = async (key, factor) => {
      await page.$eval(
        `.steer-slider[data-neuron="${key}"]`,
        (slider, value) => {
          slider.value = String(value);
          slider.dispatchEvent(new Event("change", { bubbles: true }));
        },
        factor,
      );
      await ready(page, "#ablation-result");
    };
    await slide(keys[0], 3);
    await slide(keys[1], -1);
    const typed = await page.inputValue("#steer-neurons");
    if (typed !== `${keys[0]}=3,${keys[1]}=-1`) throw new Error(`the steering field says “${typed}”`);
    const steered = await page.$eval("#ablation-result", (root) => ({
      summary: root.querySelector(".ablation-summary")?.textContent ?? "",
      shift: Number(root.querySelector(".shift")?.textContent),
    }));
    if (!steered.summary.includes("2 neurons steered") || !keys.every((k) => steered.summary.includes(k)) || !(steered.shift > 0))
      throw new Error(`steered: ${JSON.stringify(steered)}`);
    // Factor 0 through the field is the mean ablation of the same neuron: the same shift.
    await page.fill("#steer-neurons", `${keys[0]}=0`);
    const zero = await ablate(page, "#steer-form button[type=submit]");
    const ablated = await ablate(page, `.ablate-one[data-neuron="${keys[0]}"]`);
    if (zero.shift !== ablated.shift) throw new Error(`factor 0 moved ${zero.shift}, the ablation ${ablated.shift}`);
    // A bad steering: the engine's message.
    await page.fill("#steer-neurons", `${keys[0]}=many`);
    await page.click("#steer-form button[type=submit]");
    const bad = await status(page, "#ablation-result");
    if (bad.status !== "error" || !bad.text.includes("not a steering")) throw new Error(`bad steering: ${JSON.stringify(bad)}`);
    await page.fill("#steer-neurons", `${keys[0]}=3,${keys[1]}=-1`);
    await ablate(page, "#steer-form button[type=submit]"); // the screenshot: the two neurons steered
  }),
];

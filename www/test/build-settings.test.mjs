// The Build view's settings (src/build-settings.ts): what it accepts, and what it says of the rest.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildMemoryProblem, checkBuildForm, formatDuration, textPlanText } from "../src/build-settings.ts";

describe("checkBuildForm", () => {
  it("reads layers, k and components", () => {
    assert.deepEqual(checkBuildForm({ layers: "8, 9,10", k: "100", components: "32" }, 12, 500), {
      layers: [8, 9, 10],
      topK: 100,
      components: 32,
    });
  });

  it("names what is wrong", () => {
    const message = (form, layers = 3, images = 6) => {
      try {
        checkBuildForm(form, layers, images);
      } catch (e) {
        return e.message;
      }
      return "";
    };
    assert.match(message({ layers: "", k: "3", components: "8" }), /at least one layer/);
    assert.match(message({ layers: "0,3", k: "3", components: "8" }), /Each layer must be a whole number from 0 to 2, not “3”/);
    assert.match(message({ layers: "1,1", k: "3", components: "8" }), /layer 1 is given twice/);
    assert.match(message({ layers: "1", k: "10", components: "8" }), /only 6 images/);
    assert.match(message({ layers: "1", k: "3", components: "8" }, 3, 0), /choose some images/);
    assert.match(message({ layers: "1", k: "abc", components: "8" }), /Top images \(k\) must be a whole number/);
    assert.match(message({ layers: "1", k: "3", components: "0" }), /Components must be a whole number from 1/);
  });
});

describe("textPlanText", () => {
  const paper = { words: 30_000, classes: 1000, templates: 80, prompts: 110_000 };
  const untimed = { words: null, classes: {} };

  it("says what the text side embeds, and the quick setting's cost", () => {
    assert.equal(
      textPlanText(paper, untimed),
      "The build first computes this model's text side, then keeps it in this browser: 30,000 words and 1,000 classes × 80 " +
        "templates: 110,000 prompts through the text tower, timed on its bars from their first batch. For a quicker first bundle, " +
        "choose Class templates 1: 31,000 prompts.",
    );
  });

  it("gives times where the text tower was timed here, words and classes each at their own rate", () => {
    // ViT-B/32 in the page here: 121 words/s, 33.6 classes/s with 1 template, 0.54 with 80.
    const rates = { words: 121, classes: { 1: 33.6, 80: 0.54 } };
    const text = textPlanText(paper, rates);
    assert.match(text, /110,000 prompts through the text tower, about 35 min here\./);
    assert.match(text, /Class templates 1: 31,000 prompts, about 5 min\.$/);
    assert.match(textPlanText({ words: 12, classes: 0, templates: 80, prompts: 12 }, rates), /12 words: 12 prompts .*, about 1 s here\.$/);
    // The classes with 80 templates never timed: no time for them, the quick setting's still.
    const text80 = textPlanText(paper, { words: 121, classes: { 1: 33.6 } });
    assert.match(text80, /timed on its bars from their first batch\. .*31,000 prompts, about 5 min\.$/);
  });

  it("says when nothing is left to embed", () => {
    assert.equal(
      textPlanText({ words: 0, classes: 0, templates: 80, prompts: 0 }, untimed),
      "Text side: kept for this model; the build embeds no text.",
    );
  });

  it("writes durations in seconds, minutes, or hours and minutes", () => {
    assert.deepEqual([0.2, 45, 89, 91, 5399, 6000].map(formatDuration), ["1 s", "45 s", "89 s", "2 min", "1 h 30 min", "1 h 40 min"]);
  });
});

describe("buildMemoryProblem", () => {
  // ViT-B/32 at the paper's settings (3072 neurons, D 512, layers 8-10, k 100, batch 8), as the
  // engine estimates it: 3 x 3 layers x 3072 x (4 x 512 + 32) bytes per k, 360 MB besides.
  const paper = { layers: [8, 9, 10], topK: 100, components: 128 };
  const memory = { per_k: 57_507_840, fixed: 359_792_640, total: 57_507_840 * 100 + 359_792_640 };
  const model = 700 * 2 ** 20;

  it("lets a build that fits go", () => {
    assert.equal(buildMemoryProblem({ ...memory, total: 57_507_840 * 50 + 359_792_640 }, { ...paper, topK: 50 }, model), null);
  });

  it("says what a build that cannot fit needs, and the settings that fit", () => {
    const problem = buildMemoryProblem(memory, paper, model);
    assert.match(
      problem,
      /^This build would hold about 5\.7 GiB beside the model's 700\.0 MiB: more than the 4\.0 GiB WebAssembly can hold\./,
    );
    assert.match(problem, /Settings that fit: Top images \(k\) 55, or Layers 10 with k 100\.$/);
  });

  it("says when no k fits", () => {
    assert.match(buildMemoryProblem(memory, paper, 4 * 2 ** 30 - 2 ** 20), /No k fits: use fewer layers, or the CLI/);
  });
});

// What the page reads from typed text and from its address: concept specs (the lab's concept
// box and ?concept=), comma-separated items, the settings of ?weights=&bundle=&...&concept=,
// and the sources they name (src/specs.ts, src/settings.ts, src/sources.ts).

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { isConvertedDirectory, readSettings } from "../src/settings.ts";
import { pickedSources, sortPickedFiles, sourceText, urlSources } from "../src/sources.ts";
import { commaItems, conceptSpec, isNeuronKey, neuronKey } from "../src/specs.ts";

const CLASSES = ["tabby cat", "horse", "Golden Retriever"];

describe("conceptSpec", () => {
  it("takes nothing, “predicted” and “predicted class” as the predicted class", () => {
    for (const typed of ["", "   ", "predicted", "Predicted", "  PREDICTED CLASS  ", "predicted class"]) {
      assert.equal(conceptSpec(typed, CLASSES), "predicted", JSON.stringify(typed));
    }
  });

  it("takes a class name, in any case, as that class", () => {
    assert.equal(conceptSpec("horse", CLASSES), "class:horse");
    assert.equal(conceptSpec("  Tabby Cat ", CLASSES), "class:tabby cat");
    assert.equal(conceptSpec("golden retriever", CLASSES), "class:Golden Retriever");
  });

  it("keeps class:<name> as typed (trimmed)", () => {
    assert.equal(conceptSpec("class:horse", CLASSES), "class:horse");
    assert.equal(conceptSpec(" class:unicorn ", CLASSES), "class:unicorn");
    assert.equal(conceptSpec("class:", CLASSES), "class:");
  });

  it("takes anything else as text (trimmed)", () => {
    assert.equal(conceptSpec("a horse", CLASSES), "a horse");
    assert.equal(conceptSpec(" predicted cat ", CLASSES), "predicted cat");
    assert.equal(conceptSpec("horse", []), "horse");
    assert.equal(conceptSpec("Class:horse", CLASSES), "Class:horse");
  });
});

describe("comma-separated items and neuron keys", () => {
  it("splits, trims and drops empty items", () => {
    assert.deepEqual(commaItems("9:4, 9:17"), ["9:4", "9:17"]);
    assert.deepEqual(commaItems(" , ,a,, b c ,"), ["a", "b c"]);
    assert.deepEqual(commaItems(""), []);
    assert.deepEqual(commaItems("single"), ["single"]);
  });

  it("writes and recognises L:N", () => {
    assert.equal(neuronKey(9, 4), "9:4");
    assert.equal(isNeuronKey("9:4"), true);
    assert.equal(isNeuronKey("10:3071"), true);
    for (const key of ["9:", ":4", "a:1", "9:4 ", "-1:2", "9:4:1", "9;4", ""]) assert.equal(isNeuronKey(key), false, key);
  });
});

describe("readSettings", () => {
  before(() => {
    // The one thing of the page's document that settings.ts reads.
    globalThis.document = { baseURI: "https://example.org/app/index.html" };
  });

  it("opens the offline demo by default", () => {
    assert.deepEqual(readSettings(""), {
      weightsUrl: "https://example.org/app/models/tiny/converted/",
      configUrl: null,
      bundleUrl: "https://example.org/app/models/tiny/bundle/",
      bundleLocal: null,
      backend: "auto",
      demo: true,
      imageUrl: null,
      concept: null,
      embed: false,
      simulateDeviceLoss: false,
      simulateBuildDeviceLoss: false,
    });
  });

  it("reads ?image= and ?concept= (empty: none)", () => {
    const settings = readSettings("?backend=cpu&image=samples/horse.png&concept=a%20horse");
    assert.equal(settings.imageUrl, "https://example.org/app/samples/horse.png");
    assert.equal(settings.concept, "a horse");
    assert.equal(settings.backend, "cpu");
    assert.equal(readSettings("?concept=class:horse").concept, "class:horse");
    assert.equal(readSettings("?concept=").concept, null);
    assert.equal(readSettings("?image=").imageUrl, null);
  });

  it("takes other weights without the demo bundle, and a bundle address as a directory", () => {
    const other = readSettings("?weights=https://cdn.example/model.safetensors");
    assert.equal(other.weightsUrl, "https://cdn.example/model.safetensors");
    assert.equal(other.bundleUrl, null);
    assert.equal(other.demo, false);
    const both = readSettings("?weights=models/tiny/model-hf.safetensors&config=models/tiny/config.json&bundle=models/tiny/bundle");
    assert.equal(both.bundleUrl, "https://example.org/app/models/tiny/bundle/");
    assert.equal(both.configUrl, "https://example.org/app/models/tiny/config.json");
    assert.equal(readSettings("?bundle=").bundleUrl, null);
    assert.equal(readSettings("?config=").configUrl, null);
  });

  it("reads a bundle kept in the browser, ?bundle=local:NAME", () => {
    const kept = readSettings("?backend=cpu&bundle=local:my-bundle");
    assert.equal(kept.bundleLocal, "my-bundle");
    assert.equal(kept.bundleUrl, null);
    assert.equal(kept.demo, true);
    assert.deepEqual(urlSources(kept).bundle, { kind: "local", name: "my-bundle" });
    assert.equal(sourceText(urlSources(kept).bundle), "kept in this browser: my-bundle");
  });

  it("reads the flags", () => {
    const flags = readSettings("?embed=1&simulate=device-lost&backend=webgpu");
    assert.equal(flags.embed, true);
    assert.equal(flags.simulateDeviceLoss, true);
    assert.equal(flags.backend, "webgpu");
    assert.equal(readSettings("?embed=true").embed, false);
    assert.equal(readSettings("?simulate=other").simulateDeviceLoss, false);
    const build = readSettings("?simulate=build-device-lost");
    assert.deepEqual([build.simulateBuildDeviceLoss, build.simulateDeviceLoss, flags.simulateBuildDeviceLoss], [true, false, false]);
    assert.equal(readSettings("?backend=").backend, "auto");
  });

  it("says what is wrong with a bad value", () => {
    assert.throws(() => readSettings("?backend=gpu"), { message: "Unknown backend “gpu” in the address: use auto, webgpu or cpu." });
    assert.throws(() => readSettings("?weights=http://[bad"), { message: "The weights address “http://[bad” is not a valid URL." });
  });
});

describe("sources", () => {
  it("tells converted towers from a weights file", () => {
    assert.equal(isConvertedDirectory("https://x.example/tiny/converted/"), true);
    assert.equal(isConvertedDirectory("https://x.example/tiny/manifest.json"), true);
    assert.equal(isConvertedDirectory("https://x.example/tiny/manifest.json?v=2"), true);
    assert.equal(isConvertedDirectory("https://x.example/model.safetensors"), false);
    assert.equal(isConvertedDirectory("https://x.example/my-manifest.json"), false);
  });

  it("names the settings' sources", () => {
    const sources = urlSources({
      weightsUrl: "https://x.example/tiny/converted/",
      configUrl: null,
      bundleUrl: "https://x.example/tiny/bundle/",
    });
    assert.deepEqual(sources, {
      weights: { kind: "converted", url: "https://x.example/tiny/converted/" },
      config: null,
      bundle: { kind: "url", url: "https://x.example/tiny/bundle/" },
    });
    assert.equal(
      sourceText(sources.weights),
      "https://x.example/tiny/converted/ (converted towers: the text tower loads when text is first used)",
    );
    assert.equal(sourceText(sources.bundle), "https://x.example/tiny/bundle/");
    assert.equal(sourceText(null), "none (the lens views need one)");
    assert.equal(sourceText({ kind: "bytes", name: "model.safetensors", bytes: new Uint8Array() }), "local: model.safetensors");
  });

  it("sorts picked files by name", () => {
    const names = (file) => file?.name;
    const sorted = sortPickedFiles([
      { name: "config.json" },
      { name: "lens.safetensors" },
      { name: "model.safetensors" },
      { name: "manifest.json" },
    ]);
    assert.equal(names(sorted.weights), "model.safetensors");
    assert.deepEqual(sorted.bundle.map(names), ["lens.safetensors", "manifest.json"]);
    assert.equal(names(sorted.config), "config.json");
    const none = sortPickedFiles([{ name: "lens.safetensors" }, { name: "notes.txt" }]);
    assert.equal(none.weights, undefined);
    assert.equal(none.config, undefined);
  });

  it("reads picked files, and refuses incomplete ones", async () => {
    const file = (name, text = name) => new File([text], name);
    const sources = await pickedSources([file("model.safetensors", "w"), file("manifest.json", "{}"), file("lens.safetensors", "t")]);
    assert.deepEqual(sources.weights, { kind: "bytes", name: "model.safetensors", bytes: new Uint8Array([119]) });
    assert.equal(sources.config, null);
    assert.equal(sources.bundle?.name, "manifest.json + lens.safetensors");
    assert.deepEqual(sources.bundle?.manifest, new Uint8Array([123, 125]));
    await assert.rejects(pickedSources([file("manifest.json")]), { message: "Choose a weights file (.safetensors)." });
    await assert.rejects(pickedSources([file("model.safetensors"), file("manifest.json")]), {
      message: "A bundle is two files: choose its manifest.json and its lens.safetensors together.",
    });
  });
});

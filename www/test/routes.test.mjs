// The route table (src/routes.ts): every address the app accepts, malformed ones, and the links
// that lead to the routes.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { listHref, mapHref, neuronHref, parseRoute, searchHref, wordHref } from "../src/routes.ts";

const lab = { view: "lab" };
const explorer = (layer, neuron, search = null) => ({ view: "explorer", layer, neuron, search });

describe("parseRoute", () => {
  it("takes no route, an empty one and #/lab as the lab", () => {
    for (const hash of ["", "#", "#/", "#/lab", "#/lab/extra"]) assert.deepEqual(parseRoute(hash), lab, hash);
  });

  it("takes unknown routes as the lab", () => {
    for (const hash of ["#/unknown", "#/Lab", "#/MINER", "#/neurons/1/4", "#/constructor", "#/__proto__", "#/toString", "#//neuron/1/4"]) {
      assert.deepEqual(parseRoute(hash), lab, hash);
    }
  });

  it("reads a neuron's card", () => {
    assert.deepEqual(parseRoute("#/neuron/1/4"), explorer(1, 4));
    assert.deepEqual(parseRoute("#/neuron/10/3071"), explorer(10, 3071));
    assert.deepEqual(parseRoute("#neuron/2/17"), explorer(2, 17));
    assert.deepEqual(parseRoute("#/neuron/1/4/extra"), explorer(1, 4));
  });

  it("reads a layer's map", () => {
    assert.deepEqual(parseRoute("#/map/9"), { view: "map", layer: 9 });
    assert.deepEqual(parseRoute("#/map"), { view: "map", layer: null });
    assert.deepEqual(parseRoute("#/map/x"), { view: "map", layer: NaN });
    assert.deepEqual(parseRoute(mapHref(10)), { view: "map", layer: 10 });
    assert.equal(mapHref(3), "#/map/3");
  });

  it("leaves out what a neuron address leaves out", () => {
    assert.deepEqual(parseRoute("#/neuron"), explorer(null, null));
    assert.deepEqual(parseRoute("#/neuron/"), explorer(null, null));
    assert.deepEqual(parseRoute("#/neuron/2"), explorer(2, null));
    assert.deepEqual(parseRoute("#/neuron/2/"), explorer(2, null));
    assert.deepEqual(parseRoute("#/neuron//5"), explorer(null, 5));
  });

  it("keeps a malformed neuron address as NaN (the card says how to write one)", () => {
    assert.deepEqual(parseRoute("#/neuron/abc/4"), explorer(NaN, 4));
    assert.deepEqual(parseRoute("#/neuron/1/x"), explorer(1, NaN));
    // Number's reading: fractions and signs pass here; the explorer refuses them.
    assert.deepEqual(parseRoute("#/neuron/1.5/-2"), explorer(1.5, -2));
  });

  it("reads a search, decoded", () => {
    assert.deepEqual(parseRoute("#/search/cat"), explorer(null, null, "cat"));
    assert.deepEqual(parseRoute("#/search/a%20horse"), explorer(null, null, "a horse"));
    assert.deepEqual(parseRoute("#/search/a/b"), explorer(null, null, "a/b"));
    assert.deepEqual(parseRoute("#/search/caf%C3%A9"), explorer(null, null, "café"));
    assert.deepEqual(parseRoute("#/search"), explorer(null, null, ""));
  });

  it("reads a list", () => {
    assert.deepEqual(parseRoute("#/list/9:4,9:17,10:301"), { view: "list", spec: "9:4,9:17,10:301" });
    assert.deepEqual(parseRoute("#/list/9:4,%209:17"), { view: "list", spec: "9:4, 9:17" });
    assert.deepEqual(parseRoute("#/list/"), { view: "list", spec: "" });
    assert.deepEqual(parseRoute("#/list"), { view: "list", spec: "" });
    assert.deepEqual(parseRoute("#/list/garbage"), { view: "list", spec: "garbage" });
  });

  it("reads a word's page, decoded, a malformed escape kept as typed", () => {
    assert.deepEqual(parseRoute("#/word/cat"), { view: "word", word: "cat" });
    assert.deepEqual(parseRoute("#/word/zzqxv%20unknown"), { view: "word", word: "zzqxv unknown" });
    assert.deepEqual(parseRoute("#/word/na%C3%AFve"), { view: "word", word: "naïve" });
    assert.deepEqual(parseRoute("#/word/%E0%A4%A"), { view: "word", word: "%E0%A4%A" });
    assert.deepEqual(parseRoute("#/word/50%"), { view: "word", word: "50%" });
    assert.deepEqual(parseRoute("#/word"), { view: "word", word: "" });
  });

  it("reads the Build view with the settings its query presets, kept as typed", () => {
    const none = { layers: null, k: null, components: null };
    assert.deepEqual(parseRoute("#/build"), { view: "build", preset: none });
    assert.deepEqual(parseRoute("#/build?layers=8,9,10&k=100&components=32"), {
      view: "build",
      preset: { layers: "8,9,10", k: "100", components: "32" },
    });
    assert.deepEqual(parseRoute("#/build?k=abc"), { view: "build", preset: { ...none, k: "abc" } });
    assert.deepEqual(parseRoute("#/lab?k=3"), { view: "lab" });
  });

  it("reads the miner", () => {
    assert.deepEqual(parseRoute("#/miner"), { view: "miner" });
    assert.deepEqual(parseRoute("#/miner/anything"), { view: "miner" });
  });
});

describe("the routes' links", () => {
  it("writes them", () => {
    assert.equal(neuronHref(9, 1234), "#/neuron/9/1234");
    assert.equal(wordHref("cat"), "#/word/cat");
    assert.equal(wordHref("a/b c"), "#/word/a%2Fb%20c");
    assert.equal(searchHref("a horse?"), "#/search/a%20horse%3F");
    assert.equal(listHref(["9:4", "9:17"]), "#/list/9:4,9:17");
    assert.equal(listHref([]), "#/list/");
  });

  it("leads back to what they name", () => {
    assert.deepEqual(parseRoute(neuronHref(3, 0)), explorer(3, 0));
    for (const word of ["naïve", "a/b", "100%", "#hash", "?query"]) assert.deepEqual(parseRoute(wordHref(word)), { view: "word", word });
    for (const text of ["a photo of a cat", "50% / 50%", "“quoted”"])
      assert.deepEqual(parseRoute(searchHref(text)), explorer(null, null, text));
    assert.deepEqual(parseRoute(listHref(["0:1", "2:17"])), { view: "list", spec: "0:1,2:17" });
  });
});

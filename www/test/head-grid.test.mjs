// The heads grid's pure parts (src/head-grid.ts): a bundle row made a grid with its largest heads
// named as the engine names them, a cell's value and intensity, and the line under the table.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { headGridOf, headTermText, headValue, heatOf, largestText } from "../src/head-grid.ts";

describe("headGridOf", () => {
  it("lays a row out layer-major and names the three largest by |value|", () => {
    const grid = headGridOf(Float32Array.from([0.1, -0.5, 0.2, 0.05, 0.3, -0.01]), [10, 11], 3);
    assert.deepEqual(grid.layers, [10, 11]);
    assert.equal(grid.heads, 3);
    assert.equal(grid.values.length, 6);
    assert.deepEqual(
      grid.largest.map((t) => [t.layer, t.head]),
      [
        [10, 1],
        [11, 1],
        [10, 2],
      ],
    );
    assert.ok(Math.abs(grid.largest[0].value + 0.5) < 1e-6);
  });

  it("names equal magnitudes the earlier head first", () => {
    const grid = headGridOf([0.2, -0.2, 0.2, 0.1], [3, 4], 2);
    assert.deepEqual(
      grid.largest.map((t) => [t.layer, t.head]),
      [
        [3, 0],
        [3, 1],
        [4, 0],
      ],
    );
  });

  it("gives an empty grid for the last layer", () => {
    const grid = headGridOf([], [], 12);
    assert.deepEqual(grid, { layers: [], heads: 12, values: [], largest: [] });
    assert.equal(largestText(grid), "");
  });
});

describe("headValue and heatOf", () => {
  it("reads the value of a later layer's head", () => {
    const grid = headGridOf([1, 2, 3, 4, 5, 6], [1, 2], 3);
    assert.equal(headValue(grid, 0, 2), 3);
    assert.equal(headValue(grid, 1, 0), 4);
  });

  it("scales |value| by the largest, 0 throughout a grid of zeros", () => {
    assert.equal(heatOf(-0.5, 2), 0.25);
    assert.equal(heatOf(2, 2), 1);
    assert.equal(heatOf(0, 0), 0);
  });
});

describe("largestText", () => {
  it("names the largest heads with signed values", () => {
    assert.equal(headTermText({ layer: 10, head: 3, value: 0.1234 }), "L10 H3 +0.123");
    const grid = headGridOf([0.123, -0.456], [11], 2);
    assert.equal(largestText(grid), "Largest: L11 H1 −0.456, L11 H0 +0.123");
  });
});

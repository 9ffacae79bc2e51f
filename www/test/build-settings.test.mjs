// The Build view's settings (src/build-settings.ts): what it accepts, and what it says of the rest.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkBuildForm } from "../src/build-settings.ts";

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

// The page's number formatting (src/format.ts) and download file names (fileSlug, src/export.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileSlug } from "../src/export.ts";
import { formatBytes, formatMs, formatOrdinal, formatSignificant, formatSigned, formatThreads, formatValue } from "../src/format.ts";

describe("formatBytes", () => {
  it("counts bytes up to 1023, then KiB, MiB and GiB with one decimal", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(1023), "1023 B");
    assert.equal(formatBytes(1024), "1.0 KiB");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(1048576), "1.0 MiB");
    assert.equal(formatBytes(151_277_313), "144.3 MiB");
    assert.equal(formatBytes(5 * 2 ** 30), "5.0 GiB");
  });

  it("stops at GiB", () => {
    assert.equal(formatBytes(2 ** 40), "1024.0 GiB");
  });
});

describe("formatMs", () => {
  it("shows milliseconds with one decimal below a second", () => {
    assert.equal(formatMs(0), "0.0 ms");
    assert.equal(formatMs(12.345), "12.3 ms");
    assert.equal(formatMs(999.9), "999.9 ms");
  });

  it("shows seconds with two decimals from a second on", () => {
    assert.equal(formatMs(1000), "1.00 s");
    assert.equal(formatMs(2345), "2.35 s");
    assert.equal(formatMs(61_000), "61.00 s");
  });
});

describe("formatThreads", () => {
  it("says thread or threads", () => {
    assert.equal(formatThreads(1), "1 thread");
    assert.equal(formatThreads(2), "2 threads");
    assert.equal(formatThreads(8), "8 threads");
    assert.equal(formatThreads(0), "0 threads");
  });
});

describe("formatValue", () => {
  it("rounds to the decimals asked (4 by default)", () => {
    assert.equal(formatValue(0.123456), "0.1235");
    assert.equal(formatValue(-0.5, 2), "-0.50");
    assert.equal(formatValue(3, 0), "3");
    assert.equal(formatValue(12.5, 3), "12.500");
  });

  it("never shows a negative zero", () => {
    assert.equal(formatValue(-0.00001), "0.0000");
    assert.equal(formatValue(-0.0004, 3), "0.000");
    assert.equal(formatValue(-0), "0.0000");
  });
});

describe("formatSignificant", () => {
  it("keeps three significant digits (or those asked), without an exponent for everyday sizes", () => {
    assert.equal(formatSignificant(0.012345), "0.0123");
    assert.equal(formatSignificant(1234.5), "1230");
    assert.equal(formatSignificant(2), "2");
    assert.equal(formatSignificant(3.14159, 5), "3.1416");
    assert.equal(formatSignificant(-0.5), "-0.5");
  });

  it("writes what is not finite as it is", () => {
    assert.equal(formatSignificant(NaN), "NaN");
    assert.equal(formatSignificant(Infinity), "Infinity");
    assert.equal(formatSignificant(-Infinity), "-Infinity");
  });
});

describe("formatSigned", () => {
  it("signs with + or a typographic minus", () => {
    assert.equal(formatSigned(0.1234), "+0.123");
    assert.equal(formatSigned(-0.1234), "−0.123");
    assert.equal(formatSigned(0), "+0.000");
    assert.equal(formatSigned(-2, 1), "−2.0");
  });
});

describe("formatOrdinal", () => {
  it("writes 1st, 2nd, 3rd and the teens with th", () => {
    const expected = {
      0: "0th",
      1: "1st",
      2: "2nd",
      3: "3rd",
      4: "4th",
      11: "11th",
      12: "12th",
      13: "13th",
      21: "21st",
      22: "22nd",
      23: "23rd",
    };
    for (const [n, text] of Object.entries(expected)) assert.equal(formatOrdinal(Number(n)), text);
    assert.equal(formatOrdinal(101), "101st");
    assert.equal(formatOrdinal(111), "111th");
    assert.equal(formatOrdinal(112), "112th");
  });
});

describe("fileSlug", () => {
  it("keeps letters and digits, in lower case, joined by dashes", () => {
    assert.equal(fileSlug("a horse!"), "a-horse");
    assert.equal(fileSlug("  --Tabby Cat--  "), "tabby-cat");
    assert.equal(fileSlug("Café au lait"), "café-au-lait");
    assert.equal(fileSlug("日本語 テキスト"), "日本語-テキスト");
    assert.equal(fileSlug("class:golden retriever"), "class-golden-retriever");
  });

  it("cuts at 60 characters and names nothing “untitled”", () => {
    assert.equal(fileSlug("x".repeat(100)), "x".repeat(60));
    assert.equal(fileSlug("!!!"), "untitled");
    assert.equal(fileSlug(""), "untitled");
  });
});

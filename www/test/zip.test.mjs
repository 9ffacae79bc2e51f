// The bundle download's zip writer (src/zip.ts): CRC-32 against known values, and an archive
// that Python's zipfile reads back byte for byte.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crc32, zipFiles } from "../src/zip.ts";

describe("crc32", () => {
  it("gives zip's CRC-32", () => {
    assert.equal(crc32(new Uint8Array()), 0);
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
    assert.equal(crc32(new TextEncoder().encode("The quick brown fox jumps over the lazy dog")), 0x414fa339);
  });
});

describe("zipFiles", () => {
  it("writes an archive that another reader extracts exactly", async () => {
    const files = {
      "manifest.json": new TextEncoder().encode('{"format_version": 4}'),
      "lens.safetensors": Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251),
      "thumbnails/0.jpg": new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
      "thumbnails/empty.jpg": new Uint8Array(),
    };
    const zip = new Uint8Array(await zipFiles(files).arrayBuffer());
    const dir = mkdtempSync(join(tmpdir(), "clip-lens-zip-"));
    writeFileSync(join(dir, "bundle.zip"), zip);
    const script = [
      "import json, sys, zipfile",
      "z = zipfile.ZipFile(sys.argv[1])",
      "assert z.testzip() is None",
      "print(json.dumps({i.filename: list(z.read(i)) for i in z.infolist()}))",
    ].join("\n");
    const read = JSON.parse(execFileSync("python3", ["-c", script, join(dir, "bundle.zip")], { encoding: "utf8" }));
    assert.deepEqual(Object.keys(read).sort(), Object.keys(files).sort());
    for (const [name, bytes] of Object.entries(files)) assert.deepEqual(read[name], [...bytes], name);
  });
});

// The bundle download's zip writer (src/zip.ts): CRC-32 against known values, and an archive
// that Python's zipfile reads back byte for byte.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crc32, unzipFiles, zipFiles } from "../src/zip.ts";

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

describe("unzipFiles", () => {
  const files = {
    "manifest.json": new TextEncoder().encode('{"format_version": 4}'),
    "thumbnails/0.jpg": Uint8Array.from({ length: 3000 }, (_, i) => i % 7),
  };

  it("reads back what zipFiles writes", async () => {
    const zip = new Uint8Array(await zipFiles(files).arrayBuffer());
    assert.deepEqual(await unzipFiles(zip), files);
  });

  it("reads a deflated zip from another tool, its top folder removed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clip-lens-unzip-"));
    const script = [
      "import sys, zipfile",
      "z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)",
      "z.writestr('bundle/manifest.json', '{\"format_version\": 4}')",
      "z.writestr('bundle/thumbnails/0.jpg', bytes(i % 7 for i in range(3000)))",
      "z.close()",
    ].join("\n");
    execFileSync("python3", ["-c", script, join(dir, "python.zip")]);
    const zip = new Uint8Array(readFileSync(join(dir, "python.zip")));
    assert.deepEqual(await unzipFiles(zip), files);
  });

  it("names what is wrong", async () => {
    const zip = new Uint8Array(await zipFiles(files).arrayBuffer());
    await assert.rejects(unzipFiles(new Uint8Array(100)), /not a zip archive/);
    const damaged = zip.slice();
    damaged[50] ^= 0xff; // inside manifest.json's data (after its 30-byte header and 13-byte name)
    await assert.rejects(unzipFiles(damaged), /manifest.json is damaged/);
    const escaping = new Uint8Array(await zipFiles({ "../evil.json": new Uint8Array([1]) }).arrayBuffer());
    await assert.rejects(unzipFiles(escaping), /would leave the bundle's folder/);
  });
});

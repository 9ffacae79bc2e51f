// Mutation fuzzing of the page's own safetensors reader (src/safetensors.ts, with which the
// embeddable neuron card reads single rows of a bundle's lens.safetensors by HTTP ranges): the
// TypeScript twin of the Rust parsers that cargo-fuzz covers. The seed is a bundle's
// lens.safetensors; each mutant (bytes flipped, overwritten, inserted or cut, mostly in the
// header; a fixed xorshift seed, so a failure reproduces) is served by a fake fetch, with and
// without Range support. Opening it and reading every tensor, and the first and last row of
// every 2-d one, must either give as many values as the header's shape says or fail with an
// Error that names the file: never a TypeError or RangeError from inside the reader. The files
// in fuzz-regressions/ (inputs that once made it misbehave) are replayed first.
// Usage: node fuzz.mjs [lens.safetensors] (default: the demo bundle, www/generated/tiny-bundle).

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { importSource, www } from "./test/import-source.mjs";

const seedPath = process.argv[2] ?? join(www, "generated", "tiny-bundle", "lens.safetensors");
const CASES = Number(process.env.FUZZ_CASES ?? 5000);
const URL_NAME = "https://example.test/lens.safetensors";

const { RemoteSafetensors } = await importSource("safetensors.ts", { platform: "neutral" });

let state = 0x9e3779b97f4a7c15n;
function next() {
  state ^= (state << 13n) & 0xffffffffffffffffn;
  state ^= state >> 7n;
  state ^= (state << 17n) & 0xffffffffffffffffn;
  return state;
}
const below = (n) => Number(next() % BigInt(Math.max(1, n)));

/** A mutated copy of `seed`; three in four mutations fall in the first `hot` bytes (the header). */
function mutate(seed, hot) {
  let bytes = Buffer.from(seed); // a copy (Buffer.slice would share the seed's memory)
  for (let m = 0, count = 1 + below(4); m < count; m++) {
    const span = below(4) === 0 ? bytes.length : Math.min(hot, bytes.length);
    const at = below(span);
    switch (below(6)) {
      case 0:
        bytes = bytes.subarray(0, at);
        break;
      case 1:
        bytes = Buffer.concat([bytes.subarray(0, at), Uint8Array.of(below(256)), bytes.subarray(at)]);
        break;
      case 2:
        if (at < bytes.length) bytes[at] ^= 1 << below(8);
        break;
      case 3:
        if (at < bytes.length) bytes[at] = [0, 0xff, 0x39, 0x22, 0x7b, 0x2d, 0x5b, 0x2c][below(8)];
        break;
      case 4:
        for (let i = 0; i < 8 && at + i < bytes.length; i++) bytes[at + i] = below(256);
        break;
      default:
        bytes = Buffer.concat([bytes, new Uint8Array(below(16))]);
    }
  }
  return bytes;
}

/** A fetch that serves `file`, answering Range requests with 206 when `ranges`. */
function fakeFetch(file, ranges) {
  return async (_url, init) => {
    const range = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? "");
    if (!ranges || !range) return new Response(file, { status: 200 });
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), file.length - 1);
    if (start >= file.length) return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${file.length}` } });
    return new Response(file.slice(start, end + 1), { status: 206, headers: { "Content-Range": `bytes ${start}-${end}/${file.length}` } });
  };
}

/** A misbehaviour of the reader (as opposed to a refusal with a message). */
class Finding extends Error {}

/** Everything the card could ask of the file; throws a Finding when the reader misbehaves. */
async function exercise(file) {
  const tensors = await RemoteSafetensors.open(URL_NAME);
  for (const [name, info] of Object.entries(tensors.tensors)) {
    const values = info.shape.reduce((a, b) => a * b, 1);
    const all = await tensors.all(name).catch(expected);
    if (all && all.length !== values) throw new Finding(`${name}: ${all.length} values for shape [${info.shape}]`);
    if (info.shape.length === 2 && info.shape[0] > 0) {
      for (const row of [0, info.shape[0] - 1]) {
        const got = await tensors.rows(name, row).catch(expected);
        if (got && got.length !== info.shape[1]) throw new Finding(`${name} row ${row}: ${got.length} values for ${info.shape[1]} columns`);
      }
    }
  }
  return file;
}

/** An error the reader may raise: an Error (not a TypeError or RangeError) naming the file. */
function expected(error) {
  if (error instanceof Finding) throw error;
  if (error?.constructor !== Error || !String(error.message).includes(URL_NAME))
    throw new Finding(`unexpected failure: ${error?.name}: ${error?.message}`);
  return null;
}

// Kept findings first: files that once made the reader misbehave (fuzz-regressions/).
const regressions = join(www, "fuzz-regressions");
const failures = [];
for (const name of (await readdir(regressions)).sort()) {
  const file = await readFile(join(regressions, name));
  for (const ranges of [true, false]) {
    globalThis.fetch = fakeFetch(file, ranges);
    await exercise(file)
      .catch(expected)
      .catch((error) => failures.push(`fuzz-regressions/${name} (${ranges ? "ranges" : "whole file"}): ${error.message}`));
  }
}

const seed = await readFile(seedPath);
const hot = 8 + Number(new DataView(seed.buffer, seed.byteOffset).getBigUint64(0, true));
let opened = 0;
for (let i = 0; i < CASES; i++) {
  const file = i === 0 ? seed : mutate(seed, hot);
  for (const ranges of [true, false]) {
    globalThis.fetch = fakeFetch(file, ranges);
    try {
      const ok = await exercise(file).catch(expected);
      if (ok) opened++;
    } catch (error) {
      failures.push(`case ${i} (${ranges ? "ranges" : "whole file"}): ${error.message}`);
    }
  }
}
console.log(
  `fuzz: the kept findings, then ${CASES} mutants of ${seedPath} (${seed.length} bytes), each with and without Range support: ${opened} opened and read, the rest refused with a message; ${failures.length} failures`,
);
for (const failure of failures.slice(0, 20)) console.log(`  ${failure}`);
process.exit(failures.length === 0 ? 0 : 1);

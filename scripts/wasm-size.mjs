// Prints each file's size raw, gzipped (level 9) and brotli-compressed (quality 11), as a
// static host would serve it: `node scripts/wasm-size.mjs pkg/clip_lens_bg.wasm ...`.
import { readFileSync } from "node:fs";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
for (const file of process.argv.slice(2)) {
  const bytes = readFileSync(file);
  const gzip = gzipSync(bytes, { level: 9 }).length;
  const brotli = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length;
  console.log(`${file}: ${mib(bytes.length)} raw, ${mib(gzip)} gzip, ${mib(brotli)} brotli`);
}

// Bundles each unit test (test/*.test.mjs, which import the TypeScript modules under test from
// src/) with esbuild into node_modules/.cache/clip-lens-tests/, where `node --test` runs them
// (npm test). Node 20 cannot load TypeScript itself. The modules under test use no DOM.

import { build } from "esbuild";
import { readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const www = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(www, "node_modules", ".cache", "clip-lens-tests");
const tests = (await readdir(join(www, "test"))).filter((name) => name.endsWith(".test.mjs")).sort();
if (tests.length === 0) {
  console.error("test/bundle.mjs: no test/*.test.mjs");
  process.exit(1);
}

await rm(out, { recursive: true, force: true });
await build({
  absWorkingDir: www,
  entryPoints: tests.map((name) => join("test", name)),
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "inline",
  logLevel: "warning",
});

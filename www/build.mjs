// Builds the site into www/dist: bundles the TypeScript with esbuild and copies the pages, the
// stylesheet, the wasm-pack output (../pkg), the demo model and the sample images.
// Usage: node build.mjs (npm run build). Needs ../pkg from
// `wasm-pack build --target web --out-dir pkg` in the repository root.

import { build } from "esbuild";
import { cp, mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const www = dirname(fileURLToPath(import.meta.url));
const root = join(www, "..");
// CLIP_LENS_PKG: another wasm-pack output (scripts/test.sh builds a debug one into target/).
const pkg = process.env.CLIP_LENS_PKG ? join(root, process.env.CLIP_LENS_PKG) : join(root, "pkg");
// The threaded module (scripts/wasm-threads.sh; CLIP_LENS_PKG_THREADS for another build). The
// site works without it, on one thread.
const pkgThreads = process.env.CLIP_LENS_PKG_THREADS ? join(root, process.env.CLIP_LENS_PKG_THREADS) : join(root, "pkg-threads");
const dist = join(www, "dist");

/** Source (relative to the repository root) -> destination (relative to dist). */
const copies = [
  ["www/index.html", "index.html"],
  ["www/bench.html", "bench.html"],
  ["www/card.html", "card.html"],
  ["www/style.css", "style.css"],
  [join(relative(root, pkg), "clip_lens.js"), "pkg/clip_lens.js"],
  [join(relative(root, pkg), "clip_lens_bg.wasm"), "pkg/clip_lens_bg.wasm"],
  ["tests/fixtures/tiny-a/model-openai.safetensors", "models/tiny/model.safetensors"],
  ["tests/fixtures/tiny-a/config.json", "models/tiny/config.json"],
  // The same model in the Hugging Face layout (the e2e tests load it: layout detection, and a
  // bundle/model mismatch since its sha256 differs from the bundle's).
  ["tests/fixtures/tiny-a/model-hf.safetensors", "models/tiny/model-hf.safetensors"],
  // Made by scripts/demo-bundle.sh (`clip-lens convert`, `clip-lens precompute` over www/samples).
  ["www/generated/tiny-converted", "models/tiny/converted"],
  ["www/generated/tiny-bundle", "models/tiny/bundle"],
  ["www/samples", "samples"],
  // The paper's word pools, offered by the Build view (data/words/README.md says where they come from).
  ["data/words/30k.txt", "words/30k.txt"],
  ["data/words/image_descriptions_per_class.txt", "words/image-descriptions.txt"],
];

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

for (const file of ["clip_lens.js", "clip_lens_bg.wasm"]) {
  if (!existsSync(join(pkg, file))) {
    fail(
      `${relative(process.cwd(), join(pkg, file)) || file} is missing: run wasm-pack build --target web first ` +
        "(in the repository root: wasm-pack build --target web --out-dir pkg --release, or --dev), then build again.",
    );
  }
}
for (const [from] of copies) {
  if (!existsSync(join(root, from))) {
    const hint = from.startsWith("www/generated")
      ? " It is the committed demo data: restore it with git, or rebuild it with scripts/demo-bundle.sh."
      : "";
    fail(`${from} is missing.${hint}`);
  }
}

/** The worker imports the wasm-bindgen glue as "clip-lens-wasm" (see tsconfig.json); at run
 * time it is the copy in dist/pkg, next to worker.js, so it stays outside the bundle. */
const wasmGlue = {
  name: "clip-lens-wasm",
  setup(builder) {
    builder.onResolve({ filter: /^clip-lens-wasm$/ }, () => ({ path: "./pkg/clip_lens.js", external: true }));
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

try {
  await build({
    absWorkingDir: www,
    entryPoints: {
      main: "src/main.ts",
      worker: "src/worker.ts",
      bench: "src/bench.ts",
      "neuron-card": "src/neuron-card.ts",
      "card-page": "src/card-page.ts",
      "isolation-sw": "src/isolation-sw.ts",
    },
    outdir: dist,
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    minify: true,
    sourcemap: true,
    legalComments: "none",
    plugins: [wasmGlue],
    logLevel: "warning",
  });
} catch {
  fail("esbuild failed (errors above).");
}

for (const [from, to] of copies) {
  await mkdir(dirname(join(dist, to)), { recursive: true });
  await cp(join(root, from), join(dist, to), { recursive: true });
}
// Inline JS snippets that wasm-bindgen may have written next to the glue.
if (existsSync(join(pkg, "snippets"))) await cp(join(pkg, "snippets"), join(dist, "pkg", "snippets"), { recursive: true });
// The threaded module, with its snippets (wasm-bindgen-rayon's worker script).
if (existsSync(join(pkgThreads, "clip_lens_bg.wasm"))) {
  for (const file of ["clip_lens.js", "clip_lens_bg.wasm", "snippets"]) {
    if (existsSync(join(pkgThreads, file))) await cp(join(pkgThreads, file), join(dist, "pkg-threads", file), { recursive: true });
  }
} else {
  console.warn(
    `build: no threaded module at ${relative(process.cwd(), pkgThreads) || "."}: the site runs on one CPU thread (bash scripts/wasm-threads.sh builds it)`,
  );
}

async function listing(dir, prefix = "") {
  const lines = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) lines.push(...(await listing(path, `${prefix}${entry.name}/`)));
    else lines.push(`  ${`${prefix}${entry.name}`.padEnd(40)} ${((await stat(path)).size / 1024).toFixed(1).padStart(10)} KiB`);
  }
  return lines;
}
console.log(`build: wrote ${relative(process.cwd(), dist) || "."}\n${(await listing(dist)).join("\n")}`);
// What a first visit downloads before it can work (gzip -9, as a static host would serve it).
const firstPaint = ["index.html", "style.css", "main.js", "worker.js", "pkg/clip_lens.js", "pkg/clip_lens_bg.wasm"];
let raw = 0;
let gzipped = 0;
for (const file of firstPaint) {
  const bytes = await readFile(join(dist, file));
  const size = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gzipped += size;
  if (file.endsWith(".wasm"))
    console.log(`build: ${file}: ${(bytes.length / 1048576).toFixed(2)} MiB raw, ${(size / 1048576).toFixed(2)} MiB gzipped`);
}
console.log(
  `build: page, worker and wasm: ${(raw / 1048576).toFixed(2)} MiB raw, ${(gzipped / 1048576).toFixed(2)} MiB gzipped (the demo model and bundle come on top)`,
);

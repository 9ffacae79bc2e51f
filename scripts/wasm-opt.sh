#!/usr/bin/env bash
# Shrinks a wasm-bindgen output in place with binaryen's wasm-opt from npm (www/node_modules, the
# `binaryen` dev dependency; Debian's binaryen 108 breaks the module) and prints the sizes:
#   bash scripts/wasm-opt.sh pkg [--threads]
# -O2, measured against -O1 and -Os (docs/performance.md, *What a visitor waits for*). The --enable flags are
# the features rustc's output uses; the threaded module also has shared memory and atomics.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$1"; shift
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-reference-types
  --enable-multivalue --enable-simd --enable-sign-ext --enable-mutable-globals)
[ "${1:-}" = "--threads" ] && features+=(--enable-threads)
wasm="$dir/clip_lens_bg.wasm"
before=$(stat -c %s "$wasm")
start=$(date +%s)
node --max-old-space-size=8192 www/node_modules/binaryen/bin/wasm-opt -O2 "${features[@]}" "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
echo "wasm-opt -O2 in $(( $(date +%s) - start )) s: $(( before / 1048576 )) MiB before; after: $(node scripts/wasm-size.mjs "$wasm")"

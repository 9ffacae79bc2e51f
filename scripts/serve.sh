#!/usr/bin/env bash
# Builds the WebAssembly module (release) and the front end, then serves the demo on
# http://127.0.0.1:${PORT:-8080}/ (benchmark: /bench.html). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== wasm (wasm-pack, release)"
# wasm-opt runs separately: wasm-pack would call it with `-O` only, which binaryen rejects for
# the post-MVP features rustc enables by default (bulk memory, reference types, ...), and with no
# wasm-opt on PATH it would try to download one, which fails offline.
wasm-pack build --target web --out-dir pkg --release --no-opt
if command -v wasm-opt >/dev/null; then
  echo "== wasm-opt ($(wasm-opt --version))"
  if wasm-opt -O \
      --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
      --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext \
      pkg/clip_lens_bg.wasm -o pkg/clip_lens_bg.opt.wasm; then
    mv pkg/clip_lens_bg.opt.wasm pkg/clip_lens_bg.wasm
  else
    rm -f pkg/clip_lens_bg.opt.wasm
    echo "serve: wasm-opt failed; serving the unoptimised module" >&2
  fi
else
  echo "serve: wasm-opt (binaryen) is not on PATH; serving the unoptimised module" >&2
fi

echo "== site (www/dist)"
npm --prefix www run build

echo "== serving"
exec node www/serve.mjs

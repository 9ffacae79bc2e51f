#!/usr/bin/env bash
# Builds the WebAssembly module (release) and the front end, then serves the demo on
# http://127.0.0.1:${PORT:-8080}/ (benchmark: /bench.html). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== demo bundle (the tiny fixture model over www/samples, the fixture's 400 words)"
# --tests: the same feature set as scripts/test.sh, so the two share one build of burn.
cargo build --locked --tests --bin clip-lens
bash scripts/demo-bundle.sh

echo "== wasm (wasm-pack, release)"
# --no-opt: wasm-pack would run the wasm-opt on PATH, and Debian's binaryen (version 108)
# breaks the module: it turns wasm-bindgen's externref table into a function table, so
# instantiation fails ("WebAssembly.Table.set(): Argument 1 is invalid for table"). Without a
# wasm-opt on PATH wasm-pack would try to download one, which fails offline. rustc's own
# release optimisations still apply.
wasm-pack build --target web --out-dir pkg --release --no-opt
echo "== threaded wasm (the CPU backend on Web Workers; shared memory, std rebuilt: scripts/wasm-threads.sh)"
bash scripts/wasm-threads.sh wasm-pack build --target web --out-dir pkg-threads --release --no-opt -- --features threads

echo "== site (www/dist)"
npm --prefix www run build

echo "== serving"
exec node www/serve.mjs

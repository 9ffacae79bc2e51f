#!/usr/bin/env bash
# Builds the site's two WebAssembly modules as it serves them: pkg/ (single-threaded: WebGPU and
# the CPU) and pkg-threads/ (the CPU backend on Web Workers: scripts/wasm-threads.sh), each with
# Cargo's `web` profile (release, burn's GPU stack optimised for size: Cargo.toml), wasm-bindgen,
# then npm binaryen's wasm-opt (scripts/wasm-opt.sh). Prints each module's size.
#   bash scripts/wasm-web.sh            # both modules, optimised
#   CLIP_LENS_WASM_OPT=0 bash scripts/wasm-web.sh   # without wasm-opt (faster, larger)
# wasm-pack is not needed: it would run these same two steps (and the wasm-opt on PATH, which
# breaks the module when it is Debian's binaryen 108).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
stamp() { echo "== $(date +%T) $*"; }

stamp "wasm: single-threaded module (WebGPU and CPU)"
cargo build --locked --lib --target wasm32-unknown-unknown --profile web
wasm-bindgen --target web --out-dir pkg "$CARGO_TARGET_DIR/wasm32-unknown-unknown/web/clip_lens.wasm"

stamp "wasm: threaded module (the CPU backend on Web Workers; shared memory, std rebuilt)"
bash scripts/wasm-threads.sh cargo build --locked --lib --target wasm32-unknown-unknown --profile web --features threads
wasm-bindgen --target web --out-dir pkg-threads "$CARGO_TARGET_DIR/threads/wasm32-unknown-unknown/web/clip_lens.wasm"

if [ "${CLIP_LENS_WASM_OPT:-1}" = 1 ]; then
  stamp "wasm-opt (npm's binaryen)"
  bash scripts/wasm-opt.sh pkg
  bash scripts/wasm-opt.sh pkg-threads --threads
else
  node scripts/wasm-size.mjs pkg/clip_lens_bg.wasm pkg-threads/clip_lens_bg.wasm
fi
stamp "wasm: done"

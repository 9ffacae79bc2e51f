#!/usr/bin/env bash
# Runs every test: native (CPU and wgpu on whatever adapter exists; lavapipe without a GPU), a
# bounded coverage-guided fuzzing run of the parsers of untrusted bytes (scripts/fuzz.sh), then
# the browser tests in headless Chromium (WebGPU and CPU) and the site end to end. Installs
# what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
# A fresh clone gains nothing from incremental compilation but its disk use.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Headless Chromium and chromedriver as wasm-bindgen-test-runner uses them.
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-1800}"
# A wgpu adapter exists here (Mesa's lavapipe at least): the native GPU golden test must run.
export CLIP_LENS_REQUIRE_GPU="${CLIP_LENS_REQUIRE_GPU:-1}"

disk_report() { echo "$(date +%T) disk: $(df -h --output=avail "$CARGO_TARGET_DIR" 2>/dev/null | tail -1 | tr -d ' ') free, target $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)"; }
mkdir -p "$CARGO_TARGET_DIR"
disk_report

echo "== native tests"
cargo test --locked

disk_report
echo "== fuzzing: cargo-fuzz (nightly, AddressSanitizer) of the weights, bundle and image parsers, ${FUZZ_SECONDS:-60} s each, after every kept finding"
bash scripts/fuzz.sh

disk_report
echo "== browser tests (headless Chromium: WebGPU and CPU)"
cargo test --locked --target wasm32-unknown-unknown --test web -- --nocapture 2>&1 | tee "$CARGO_TARGET_DIR/browser-tests.log"
grep -q "test result: ok" "$CARGO_TARGET_DIR/browser-tests.log"

disk_report
echo "== the site in Chromium (playwright-core): every view on WebGPU and CPU, loading, errors, the neuron card"
# A debug wasm build: it reuses the browser tests' compilation (seconds, not a release build).
wasm-pack build --target web --out-dir target/pkg-dev --dev --no-opt
bash scripts/demo-bundle.sh
# The page's own safetensors reader (the neuron card's), fuzzed like the Rust parsers.
node www/fuzz.mjs
(cd www && npx tsc --noEmit -p tsconfig.test.json)
CLIP_LENS_PKG=target/pkg-dev npm --prefix www run build
E2E_OUT="$CARGO_TARGET_DIR/e2e" node www/e2e.mjs
disk_report

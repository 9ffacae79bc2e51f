#!/usr/bin/env bash
# Runs every test: native (CPU and wgpu on whatever adapter exists; lavapipe without a GPU), a
# bounded coverage-guided fuzzing run of the parsers of untrusted bytes (scripts/fuzz.sh), then
# the browser tests in headless Chromium (the single-threaded module on WebGPU and CPU, the
# threaded module on its CPU threads) and the site end to end. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
# A fresh clone gains nothing from incremental compilation but its disk use.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Headless Chromium and chromedriver as wasm-bindgen-test-runner uses them.
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
# wasm-bindgen-test-runner's time limit comes from .cargo/config.toml's [env], as for a user.
# A wgpu adapter exists here (Mesa's lavapipe at least): the native GPU golden test must run.
export CLIP_LENS_REQUIRE_GPU="${CLIP_LENS_REQUIRE_GPU:-1}"

disk_report() { echo "$(date +%T) disk: $(df -h --output=avail "$CARGO_TARGET_DIR" 2>/dev/null | tail -1 | tr -d ' ') free, target $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)"; }
mkdir -p "$CARGO_TARGET_DIR"
disk_report

echo "== formatting (rustfmt.toml)"
cargo fmt --all --check
(cd fuzz && cargo fmt --all --check)
echo "== lints: clippy natively (every target) and for wasm32 (the library and its tests); warnings are errors"
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown --lib --tests -- -D warnings

echo "== native tests"
cargo test --locked

disk_report
echo "== fuzzing: cargo-fuzz (nightly, AddressSanitizer) of the weights, bundle and image parsers, ${FUZZ_SECONDS:-60} s each, after every kept finding"
bash scripts/fuzz.sh

disk_report
echo "== browser tests (headless Chromium: WebGPU and CPU)"
# The documented browser-test command exactly as typed (docs/testing.md): wasm-pack runs
# `cargo test` for wasm32 on every test target with wasm-bindgen-test-runner (the native `it`
# is empty there, web_bench's tests are ignored); nothing set here that a user would lack.
wasm-pack test --headless --chrome 2>&1 | tee "$CARGO_TARGET_DIR/browser-tests.log"
grep -q "test result: ok" "$CARGO_TARGET_DIR/browser-tests.log"

disk_report
echo "== browser tests of the threaded module (CPU on rayon's pool of two Web Workers; scripts/wasm-threads.sh)"
bash scripts/wasm-threads.sh wasm-pack test --headless --chrome --locked --test web --features threads -- --nocapture 2>&1 | tee "$CARGO_TARGET_DIR/browser-tests-threads.log"
grep -q "test result: ok" "$CARGO_TARGET_DIR/browser-tests-threads.log"

disk_report
echo "== the site in Chromium (playwright-core): every view on WebGPU and CPU, loading, errors, the neuron card"
# Debug wasm builds: they reuse the browser tests' compilations (seconds, not release builds).
wasm-pack build --target web --out-dir target/pkg-dev --dev --no-opt
bash scripts/wasm-threads.sh wasm-pack build --target web --out-dir target/pkg-threads-dev --dev --no-opt -- --features threads
npm --prefix www run format:check
npm --prefix www test
# The page's own safetensors reader (the neuron card's), fuzzed like the Rust parsers.
node www/fuzz.mjs
(cd www && npx tsc --noEmit -p tsconfig.test.json)
CLIP_LENS_PKG=target/pkg-dev CLIP_LENS_PKG_THREADS=target/pkg-threads-dev npm --prefix www run build
E2E_OUT="$CARGO_TARGET_DIR/e2e" node www/e2e.mjs
disk_report

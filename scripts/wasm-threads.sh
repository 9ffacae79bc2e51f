#!/usr/bin/env bash
# Runs a cargo or wasm-pack command for the threaded WebAssembly module (Cargo feature
# `threads`): shared memory through the atomics and bulk-memory features, std rebuilt with them
# (`build-std`, a nightly cargo feature that stable allows under RUSTC_BOOTSTRAP=1; needs the
# rust-src component), and a 4 GiB memory limit (a shared memory declares its maximum; 4 GiB is
# all wasm32 addresses, as the single-threaded module may grow to). Its own target directory,
# so that it never invalidates the single-threaded build's artifacts.
# Usage: bash scripts/wasm-threads.sh cargo test --target wasm32-unknown-unknown --features threads --test web
#        bash scripts/wasm-threads.sh wasm-pack build --target web --out-dir target/pkg-threads --release --no-opt -- --features threads
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/threads"
export RUSTC_BOOTSTRAP=1
# `test` too: cargo adds it for test builds, and one set of std crates lets the browser tests
# and the page's debug module share one compilation of everything.
export CARGO_UNSTABLE_BUILD_STD="panic_abort,std,test"
# .cargo/config.toml's flags for wasm32 (getrandom's backend, simd128), plus shared memory:
# rustc 1.95 passes the linker none of it for wasm32-unknown-unknown, so the module's memory is
# made shared and imported here (wasm-bindgen's thread transform requires both), and the
# thread-local storage symbols wasm-bindgen sets up for each worker are exported.
flags='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals'
for arg in --shared-memory --import-memory --max-memory=4294967296 \
  --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base; do
  flags="$flags -C link-arg=$arg"
done
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$flags"
exec "$@"

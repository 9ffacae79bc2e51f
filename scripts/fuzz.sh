#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz: libFuzzer with AddressSanitizer, debug assertions on) of
# the parsers that take untrusted bytes: `weights` (safetensors files), `bundle` (manifest.json
# and lens.safetensors) and `image` (PNG, JPEG, WebP, GIF decoding and preprocessing). The
# targets' bodies are fuzz/src/lib.rs; they build the crate without its `engine` feature (no burn).
#
# For each target: first every kept finding (fuzz/regressions/<target>/) and every seed
# (fuzz/seeds/<target>/) runs once, then libFuzzer explores for FUZZ_SECONDS (default 60) from
# them and from earlier runs' corpus (target/fuzz/corpus/<target>/). FUZZ_SEED (default 1) fixes
# libFuzzer's random choices, so that a CI run is reproducible; set another to explore elsewhere.
#
# A finding stops the script with libFuzzer's report; the input is saved in
# target/fuzz/artifacts/<target>/. Reproduce it with
#   cargo +nightly fuzz run -a <target> <that file>
# fix the cause, and keep the input in fuzz/regressions/<target>/ (tests/it/fuzz.rs replays it on
# the stable toolchain too).
#
# Installs what it needs: a nightly toolchain (cargo-fuzz needs it for the sanitizer flags; the
# stable one with RUSTC_BOOTSTRAP=1 when none can be had) and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_SEED="${FUZZ_SEED:-1}"
TARGETS=(${FUZZ_TARGETS:-weights bundle image})
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
work="$CARGO_TARGET_DIR/fuzz"

# cargo-fuzz passes nightly-only flags (-Zsanitizer). Without a nightly toolchain, and none to
# be installed, the stable one takes them with RUSTC_BOOTSTRAP=1 (its ASan runtime ships too).
cargo_fuzz=(cargo +nightly fuzz)
if ! cargo +nightly --version >/dev/null 2>&1 && ! rustup toolchain install nightly --profile minimal; then
  echo "fuzz: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1"
  cargo_fuzz=(cargo fuzz)
  export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked

fuzz_flags=(--debug-assertions --target-dir "$work/build")
"${cargo_fuzz[@]}" build "${fuzz_flags[@]}"

for target in "${TARGETS[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target/"
  log="$work/$target.log"
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus" "fuzz/seeds/$target")
  [ -d "fuzz/regressions/$target" ] && inputs+=("fuzz/regressions/$target")
  echo "== fuzz $target for ${FUZZ_SECONDS}s (seed $FUZZ_SEED) from ${inputs[*]}"
  if ! "${cargo_fuzz[@]}" run "${fuzz_flags[@]}" "$target" "${inputs[@]}" -- \
      -max_total_time="$FUZZ_SECONDS" -seed="$FUZZ_SEED" -max_len=65536 -timeout=30 \
      -rss_limit_mb=4096 -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -80
    echo "fuzz: $target found a crash (its input is in $artifacts; full log $log)"
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^INFO: .*(corpus|files found)' "$log" || tail -5 "$log"
done

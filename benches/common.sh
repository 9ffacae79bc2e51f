# What the benchmark scripts (benches/shards.sh, text_side.sh, page_build.sh) share; they set
# `root` (the repository) before sourcing it, and `out` (inputs, bundles and logs go there).

# The binary: CLIP_LENS, or the debug build.
clip_lens="${CLIP_LENS:-${CARGO_TARGET_DIR:-$root/target}/debug/clip-lens}"

# out_and_inputs DEFAULT_IMAGES OUT [IMAGES] [SHAPE]: sets `out`, `images` and `shape` from a
# script's arguments `OUT [IMAGES=DEFAULT_IMAGES] [SHAPE=b32]` and makes its inputs.
out_and_inputs() {
  out="${2:?usage: $0 OUT [IMAGES] [SHAPE]}"
  images="${3:-$1}"
  shape="${4:-b32}"
  inputs "$images" "$shape"
}

# inputs IMAGES SHAPE: OUT/inputs from `cargo run --profile dev --example precompute_inputs`
# (once; delete it for other inputs).
inputs() {
  if [[ ! -d "$out/inputs/images" ]]; then
    (cd "$root" && cargo run --locked --profile dev --example precompute_inputs -- "$out/inputs" "$1" "$2")
  fi
}

# timed NAME ARGS...: runs clip-lens ARGS, then prints its stage lines (and notes of words taken
# from a text file), wall time and peak memory.
timed() {
  local name="$1"
  shift
  mkdir -p "$out/logs"
  /usr/bin/time -f "%e %M" -o "$out/logs/$name.time" "$clip_lens" "$@" 2>"$out/logs/$name.log" || {
    cat "$out/logs/$name.log" >&2
    exit 1
  }
  read -r seconds kilobytes <"$out/logs/$name.time"
  grep -E "^(pass|merging|embedding|sparse|thumbnails|[0-9]+ of [0-9]+ words)" "$out/logs/$name.log" | sed "s/^/  $name: /" || true
  echo "$name: $seconds s in all, peak memory $((kilobytes / 1024)) MiB"
}

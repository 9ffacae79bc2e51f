#!/usr/bin/env bash
# Times `precompute` unsharded and sharded (docs/sharding.md) on a random-weight CLIP over
# synthetic images, checks that both write the same bundle, and prints each step's time, rate
# and peak memory (the figures of docs/performance.md, *Sharded precompute*):
#
#   bash benches/shards.sh OUT [IMAGES=300] [SHARDS=3] [SHAPE=b32]
#
# OUT/inputs gets the weights (both towers, f16), config.json and IMAGES PNGs from
# `cargo run --profile dev --example precompute_inputs` (once; delete it for other inputs);
# OUT/unsharded and OUT/sharded the two bundles; OUT/logs each step's output. The shards run
# one after another, each alone on the machine, as each would on its own machine. LAYERS
# (8,9,10), TOP_K (100), COMPONENTS (128), BATCH (16), WORDS (the fixture's 400) and DEVICE
# (cpu) set the run; CLIP_LENS names the binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: $0 OUT [IMAGES] [SHARDS] [SHAPE]}"
images="${2:-300}"
n="${3:-3}"
shape="${4:-b32}"
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
inputs "$images" "$shape"
args=(--weights "$out/inputs/model.safetensors" --images "$out/inputs/images"
  --words "${WORDS:-$root/tests/fixtures/tiny-a/words.txt}" --layers "${LAYERS:-8,9,10}" --top-k "${TOP_K:-100}"
  --components "${COMPONENTS:-128}" --batch "${BATCH:-16}" --device "${DEVICE:-cpu}" --restart)

timed unsharded precompute "${args[@]}" --out "$out/unsharded"
for ((i = 0; i < n; i++)); do timed "pass1-$i-of-$n" precompute "${args[@]}" --out "$out/sharded" --shard "$i/$n"; done
mapfile -t pass1 < <(for ((i = 0; i < n; i++)); do echo "$out/sharded/shards/pass1-$i-of-$n.safetensors"; done)
timed merge-means precompute "${args[@]}" --out "$out/sharded" --merge "${pass1[@]}"
for ((i = 0; i < n; i++)); do
  timed "pass2-$i-of-$n" precompute "${args[@]}" --out "$out/sharded" --shard "$i/$n" \
    --means "$out/sharded/shards/means.safetensors"
done
mapfile -t pass2 < <(for ((i = 0; i < n; i++)); do echo "$out/sharded/shards/pass2-$i-of-$n.safetensors"; done)
timed merge-bundle precompute "${args[@]}" --out "$out/sharded" --merge "${pass2[@]}"
echo "shard files:"
ls -l "$out/sharded/shards" | awk 'NR > 1 { printf "  %s %.1f MiB\n", $9, $5 / 1048576 }'
for file in manifest.json lens.safetensors; do
  if cmp -s "$out/unsharded/$file" "$out/sharded/$file"; then
    echo "$file: the same bytes sharded and unsharded"
  else
    echo "$file: DIFFERS between the sharded and the unsharded run" >&2
    exit 1
  fi
done
diff -r "$out/unsharded/thumbnails" "$out/sharded/thumbnails" >/dev/null && echo "thumbnails: the same bytes"

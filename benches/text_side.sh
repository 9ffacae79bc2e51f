#!/usr/bin/env bash
# Times `precompute` with and without the model's text side computed once (`embed-text`,
# `precompute --text`) on a random-weight CLIP over synthetic images, checks that both write the
# same bundle, and prints each step's stages, time and peak memory (docs/performance.md,
# *The text side, once*):
#
#   bash benches/text_side.sh OUT [IMAGES=32] [SHAPE=b32]
#
# OUT/inputs as benches/shards.sh makes them (`cargo run --profile dev --example
# precompute_inputs`); OUT/without and OUT/with the two bundles, OUT/text-embeddings.safetensors
# the text side, OUT/logs each step's output. LAYERS (9), TOP_K (16), COMPONENTS (32), WORDS (the
# fixture's 400) and CLASS_TEMPLATES (80) set the run; CLIP_LENS names the binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
out_and_inputs 32 "$@"
words="${WORDS:-$root/tests/fixtures/tiny-a/words.txt}"
model=(--weights "$out/inputs/model.safetensors" --config "$out/inputs/config.json")
args=("${model[@]}" --images "$out/inputs/images" --words "$words" --layers "${LAYERS:-9}" --top-k "${TOP_K:-16}"
  --components "${COMPONENTS:-32}" --restart)

timed without precompute "${args[@]}" --out "$out/without"
timed embed-text embed-text "${model[@]}" --words "$words" --class-templates "${CLASS_TEMPLATES:-80}" \
  --out "$out/text-embeddings.safetensors"
timed with precompute "${args[@]}" --text "$out/text-embeddings.safetensors" --out "$out/with"
for file in manifest.json lens.safetensors; do
  cmp -s "$out/without/$file" "$out/with/$file" || { echo "$file differs between the two runs" >&2; exit 1; }
done
echo "the two bundles are the same, byte for byte"

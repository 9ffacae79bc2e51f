#!/usr/bin/env bash
# Times a bundle's build in the page (the Build view, headless Chromium, CPU backend) against
# `precompute` natively on the same images, model and settings, and a reload during pass 2
# (docs/performance.md, *A bundle built in the page*):
#
#   bash benches/page_build.sh OUT [IMAGES=500] [SHAPE=b32]
#
# A random-weight CLIP and synthetic images (OUT/inputs, as benches/shards.sh makes them), its
# converted towers with the model's text side beside them (OUT/converted: `convert`, `embed-text`
# over WORDS, default the first 10,000 words of data/words/30k.txt, with 1 class template), then
# `precompute --text` (OUT/native) and the page's build (benches/page_build.mjs, on www/dist: build
# the site first, with its threaded module for 2 threads), and the text tower's speed in the page
# (BENCH_TEXT_SIDE=1, towers without their text side). LAYERS (8,9,10), TOP_K (50: what fits
# WebAssembly's 4 GiB with 3 layers; the page refuses 100) and COMPONENTS (32) set the run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
out_and_inputs 500 "$@"
words="${WORDS:-$out/words-10k.txt}"
[[ -n "${WORDS:-}" ]] || head -n 10000 "$root/data/words/30k.txt" >"$words"
model=(--weights "$out/inputs/model.safetensors" --config "$out/inputs/config.json")
if [[ ! -f "$out/converted/text-embeddings.safetensors" ]]; then
  "$clip_lens" convert "${model[@]}" --dtype f32 --out "$out/converted"
  timed embed-text embed-text "${model[@]}" --words "$words" --class-templates 1 \
    --out "$out/converted/text-embeddings.safetensors"
fi
settings=(--layers "${LAYERS:-8,9,10}" --top-k "${TOP_K:-50}" --components "${COMPONENTS:-32}")
timed native precompute "${model[@]}" --images "$out/inputs/images" --words "$words" \
  --text "$out/converted/text-embeddings.safetensors" \
  "${settings[@]}" --restart --out "$out/native"
# The page reads the towers from its own origin (its CSP): a link into the built site.
rm -rf "$root/www/dist/models/bench"
cp -al "$out/converted" "$root/www/dist/models/bench" 2>/dev/null || cp -r "$out/converted" "$root/www/dist/models/bench"
node "$root/benches/page_build.mjs" "$out/inputs/images" "${LAYERS:-8,9,10}" "${TOP_K:-50}" "${COMPONENTS:-32}" | tee "$out/logs/page.json"
# The text tower's speed in the page: the same towers without their text side.
rm -rf "$root/www/dist/models/bench-notext"
mkdir -p "$root/www/dist/models/bench-notext"
for file in "$out/converted"/*; do
  [[ "$(basename "$file")" == text-embeddings.safetensors ]] || ln "$file" "$root/www/dist/models/bench-notext/" 2>/dev/null ||
    cp "$file" "$root/www/dist/models/bench-notext/"
done
BENCH_TEXT_SIDE=1 node "$root/benches/page_build.mjs" "$out/inputs/images" "${LAYERS:-8,9,10}" "${TOP_K:-50}" "${COMPONENTS:-32}" |
  tee "$out/logs/page-text-side.json"

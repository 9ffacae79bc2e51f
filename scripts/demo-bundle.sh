#!/usr/bin/env bash
# Builds the demo's data: the tiny fixture model split into its towers (`clip-lens convert`, f32,
# into www/generated/tiny-converted) and its bundle over www/samples with the fixture's 400
# words (www/generated/tiny-bundle); www/build.mjs copies both into the site. Needs the CLI
# built (scripts/serve.sh and scripts/test.sh build it).
set -euo pipefail
cd "$(dirname "$0")/.."
clip_lens="${CARGO_TARGET_DIR:-$PWD/target}/debug/clip-lens"
"$clip_lens" convert --weights tests/fixtures/tiny-a/model-openai.safetensors --config tests/fixtures/tiny-a/config.json \
  --dtype f32 --out www/generated/tiny-converted
"$clip_lens" precompute --weights tests/fixtures/tiny-a/model-openai.safetensors \
  --images www/samples --layers 0,1,2 --top-k 3 --components 8 \
  --words tests/fixtures/tiny-a/words.txt --out www/generated/tiny-bundle --restart

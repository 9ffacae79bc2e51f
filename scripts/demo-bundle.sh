#!/usr/bin/env bash
# Rebuilds the demo's data, which is committed (www/generated; www/build.mjs copies it into the
# site, so serving the demo needs no native build): the tiny fixture model split into its towers
# (`clip-lens convert`, f32, into OUT/tiny-converted) with its text side (`clip-lens embed-text`:
# the fixture's 400 words and the ImageNet classes, OUT/tiny-converted/text-embeddings.safetensors)
# and its bundle over www/samples with those words (OUT/tiny-bundle). OUT is the first argument
# (default www/generated).
# tests/it/demo_data.rs runs this into a scratch folder and fails when the committed data differs:
# after a change to `convert`, `precompute` or the fixture, run it and commit www/generated.
# Needs the CLI built (`cargo build --tests --bin clip-lens`); CLIP_LENS names another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-www/generated}"
clip_lens="${CLIP_LENS:-${CARGO_TARGET_DIR:-$PWD/target}/debug/clip-lens}"
"$clip_lens" convert --weights tests/fixtures/tiny-a/model-openai.safetensors --config tests/fixtures/tiny-a/config.json \
  --dtype f32 --out "$out/tiny-converted"
"$clip_lens" embed-text --weights tests/fixtures/tiny-a/model-openai.safetensors --config tests/fixtures/tiny-a/config.json \
  --words tests/fixtures/tiny-a/words.txt --out "$out/tiny-converted/text-embeddings.safetensors"
"$clip_lens" precompute --weights tests/fixtures/tiny-a/model-openai.safetensors \
  --images www/samples --layers 0,1,2 --top-k 3 --components 8 \
  --words tests/fixtures/tiny-a/words.txt --text "$out/tiny-converted/text-embeddings.safetensors" \
  --out "$out/tiny-bundle" --restart

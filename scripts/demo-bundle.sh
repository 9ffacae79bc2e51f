#!/usr/bin/env bash
# Builds the demo bundle: the tiny fixture model over www/samples with the fixture's 400 words,
# into www/generated/tiny-bundle (www/build.mjs copies it into the site). Needs the CLI built
# (scripts/serve.sh and scripts/test.sh build it).
set -euo pipefail
cd "$(dirname "$0")/.."
"${CARGO_TARGET_DIR:-$PWD/target}/debug/clip-lens" precompute --weights tests/fixtures/tiny-a/model-openai.safetensors \
  --images www/samples --layers 0,1,2 --top-k 3 --components 8 \
  --words tests/fixtures/tiny-a/words.txt --out www/generated/tiny-bundle --restart

#!/usr/bin/env bash
# Builds the site's WebAssembly modules (scripts/wasm-web.sh) and the front end, then serves the
# demo on http://127.0.0.1:${PORT:-8080}/ (benchmark: /bench.html). Installs what is missing
# first: what the demo needs, not the test tools (scripts/setup.sh --demo).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --demo

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The demo's model and bundle are committed (www/generated, kept current by tests/it/demo_data.rs):
# no native build here.
bash scripts/wasm-web.sh

echo "== site (www/dist)"
npm --prefix www run build
echo "== built in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s; serving"
exec node www/serve.mjs

#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need on a fresh Debian machine with
# rustup, cargo, node and npm: the wasm32 target, wasm-bindgen-cli at the Cargo.lock version and
# the front end's npm packages (with binaryen's wasm-opt); for the tests also Debian packages
# (Chromium and its driver, Mesa's software Vulkan for the native GPU tests), rustfmt, clippy
# and wasm-pack.
# Idempotent.
#   bash scripts/setup.sh          # everything (scripts/test.sh)
#   bash scripts/setup.sh --demo   # what building the demo needs (scripts/serve.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
demo_only=0
[ "${1:-}" = "--demo" ] && demo_only=1

if [ "$demo_only" = 0 ]; then
  need_apt=()
  for pkg in chromium chromium-driver mesa-vulkan-drivers libvulkan1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

wbg_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $wbg_version"; then
  echo "setup: installing wasm-bindgen-cli $wbg_version"
  cargo install wasm-bindgen-cli --version "$wbg_version" --locked --force \
    || cargo install wasm-bindgen-cli --version "$wbg_version" --force
fi
if [ "$demo_only" = 0 ]; then
  # The formatting and lint gates of scripts/test.sh.
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  command -v wasm-pack >/dev/null || { echo "setup: installing wasm-pack"; cargo install wasm-pack --locked || cargo install wasm-pack; }
fi

if [ -f www/package.json ]; then
  npm ci --prefix www --no-audit --no-fund --loglevel=error
fi

#!/usr/bin/env bash
# Sharded precompute on this machine: N local processes instead of one (docs/sharding.md).
#
#   bash scripts/precompute-local.sh N ARGS...
#
# ARGS are exactly those of an unsharded `clip-lens precompute` (--out included), and the bundle
# written is the same. The flow: pass 1 of the N shards in parallel, merge of their means, pass
# 2 of the N shards in parallel, the final merge (words, classes, OMP, thumbnails); any failing
# process stops the flow with its log. Each shard's log is OUT/shards/pass{1,2}-I-of-N.log;
# OUT/shards is removed once the bundle is written. Stopped (Ctrl-C) or failed, running the
# same command again resumes: finished shards are not run again, the others resume from their
# checkpoints. CLIP_LENS names the binary (default: the debug build, as scripts/demo-bundle.sh).
set -euo pipefail
if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N ARGS... (ARGS: those of clip-lens precompute, --out included)" >&2
  exit 2
fi
n="$1"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
clip_lens="${CLIP_LENS:-${CARGO_TARGET_DIR:-$root/target}/debug/clip-lens}"
out=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --out) out="${args[i + 1]:-}" ;;
    --out=*) out="${args[i]#--out=}" ;;
  esac
done
if [[ -z "$out" ]]; then
  echo "$0: ARGS need --out (the bundle directory)" >&2
  exit 2
fi
shards="$out/shards"
mkdir -p "$shards"

pids=()
# Forward Ctrl-C and termination to the shards: each checkpoints and stops.
trap 'kill -INT "${pids[@]}" 2>/dev/null || true; wait; exit 130' INT TERM

# Runs pass $1 of every shard in parallel (the rest: extra arguments); fails if any fails.
run_shards() {
  local pass="$1"
  shift
  pids=()
  for ((i = 0; i < n; i++)); do
    "$clip_lens" precompute "${args[@]}" --shard "$i/$n" "$@" 2>"$shards/pass$pass-$i-of-$n.log" &
    pids+=($!)
  done
  local failed=0
  for ((i = 0; i < n; i++)); do
    if ! wait "${pids[i]}"; then
      echo "pass $pass of shard $i/$n failed; its log ($shards/pass$pass-$i-of-$n.log) ends:" >&2
      tail -n 5 "$shards/pass$pass-$i-of-$n.log" >&2
      failed=1
    fi
  done
  pids=()
  [[ $failed == 0 ]] || exit 1
  echo "pass $pass: $n shards done" >&2
}

shard_files() {
  for ((i = 0; i < n; i++)); do echo "$shards/pass$1-$i-of-$n.safetensors"; done
}

run_shards 1
mapfile -t pass1 < <(shard_files 1)
"$clip_lens" precompute "${args[@]}" --merge "${pass1[@]}"
run_shards 2 --means "$shards/means.safetensors"
mapfile -t pass2 < <(shard_files 2)
"$clip_lens" precompute "${args[@]}" --merge "${pass2[@]}"
rm -r "$shards"

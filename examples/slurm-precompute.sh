#!/usr/bin/env bash
# Sharded precompute on Slurm (docs/sharding.md): submits the four steps, each waiting for the
# previous one (--dependency=afterok): pass 1 as a job array of N tasks (shard I is
# SLURM_ARRAY_TASK_ID), the merge of the means, pass 2 as a second array, the final merge.
# Every path is on a file system that all nodes share.
#
#   bash examples/slurm-precompute.sh            # from a login node; prints the job ids
#
# Adapt N, ARGS (exactly those of an unsharded `clip-lens precompute`), the binary and the
# resources (see docs/performance.md, *Sharded precompute*: memory and time per image). A task that
# fails or is preempted can be resubmitted as is (`--requeue`): it resumes from its checkpoint,
# and a task whose shard file is already written exits at once.
set -euo pipefail
N=16
CLIP_LENS=/shared/bin/clip-lens
OUT=/shared/bundle
ARGS="--weights /shared/ViT-B-32.safetensors --images /shared/imagenet-val --words /shared/words.txt
  --layers 8,9,10 --top-k 100 --components 128 --batch 16 --out $OUT"
ARGS="${ARGS//$'\n'/ }"
mkdir -p "$OUT/logs"
submit() { sbatch --parsable --requeue --output="$OUT/logs/%x-%A_%a.log" "$@"; }

pass1=$(submit --job-name=pass1 --array=0-$((N - 1)) --cpus-per-task=8 --mem=3G --time=24:00:00 \
  --wrap="$CLIP_LENS precompute $ARGS --shard \$SLURM_ARRAY_TASK_ID/$N")
means=$(submit --job-name=merge-means --dependency=afterok:"$pass1" --cpus-per-task=1 --mem=2G --time=1:00:00 \
  --wrap="$CLIP_LENS precompute $ARGS --merge $OUT/shards/pass1-*-of-$N.safetensors")
pass2=$(submit --job-name=pass2 --dependency=afterok:"$means" --array=0-$((N - 1)) --cpus-per-task=8 --mem=10G \
  --time=24:00:00 --wrap="$CLIP_LENS precompute $ARGS --shard \$SLURM_ARRAY_TASK_ID/$N --means $OUT/shards/means.safetensors")
bundle=$(submit --job-name=merge-bundle --dependency=afterok:"$pass2" --cpus-per-task=8 --mem=10G --time=4:00:00 \
  --wrap="$CLIP_LENS precompute $ARGS --merge $OUT/shards/pass2-*-of-$N.safetensors")
echo "submitted: pass 1 $pass1, means $means, pass 2 $pass2, bundle $bundle (logs in $OUT/logs)"

#!/bin/bash
# Build a sharded model with a Slurm job array: 8 tasks share the shards, and together
# write exactly the files (and the same index) one `specc build` would.
#
#   sbatch examples/slurm-build.sh
#
# specc reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT itself;
# shard k (0-based) is built by the task whose index, counted from the array's minimum, is
# k mod COUNT. Every task writes the index file (atomically, with the same contents).
#SBATCH --job-name=specc-llama2-7b
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=00:30:00
#SBATCH --output=specc-%A_%a.log
set -euo pipefail
OUT=${OUT:-/shared/models/llama2-7b}
mkdir -p "$OUT"
specc build specs/llama2-7b.yaml -o "$OUT/model.safetensors" --max-shard-size 2GB --threads "${SLURM_CPUS_PER_TASK:-4}"

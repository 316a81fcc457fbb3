#!/usr/bin/env bash
# Embed a large library in 8 parallel Slurm jobs, then merge their shards into the home's embeddings.
#
# Every task runs `musimilar embed --shard I/8`: it embeds the tracks whose catalog id % 8 == I - 1 and stores them
# in $MUSIMILAR_HOME/embedding-shards/I-of-8. The tasks agree on who embeds what because they read one catalog:
# the home lies on storage every node mounts at the same path (NFS, Lustre, GPFS...).
#
# Before submitting:
#   - the home holds the converted library and a trained model (`musimilar convert DIR`, `musimilar train`);
#   - nothing else writes to the home (no convert or train) until the merge is done.
#
# Submit the array, then a merge job that starts when every task has succeeded, and rebuilds the index:
#
#   export MUSIMILAR_HOME=/shared/musimilar-home       # sbatch passes the environment on to the jobs
#   mkdir -p logs
#   JOB=$(sbatch --parsable examples/slurm-embed-array.sh)
#   sbatch --dependency=afterok:"$JOB" --job-name=musimilar-merge --time=01:00:00 --cpus-per-task=4 --wrap '
#       set -e
#       musimilar embed --merge "$MUSIMILAR_HOME"/embedding-shards/*-of-8
#       musimilar index'
#
# `--merge` takes the shard folders as its arguments. The merged table joins the home's current embeddings of
# the same model; `musimilar info` then shows the result. Each shard takes a lock of its own, so the array's
# tasks run side by side on one home.
#
#SBATCH --job-name=musimilar-embed
#SBATCH --array=1-8
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/embed-%A_%a.out
set -euo pipefail

SHARDS=8  # keep in step with --array=1-SHARDS above
: "${MUSIMILAR_HOME:?set MUSIMILAR_HOME to the shared library home}"
: "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is an array job)}"

echo "shard ${SLURM_ARRAY_TASK_ID}/${SHARDS} of ${MUSIMILAR_HOME} on $(hostname)" >&2
rc=0
musimilar embed --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" --format json || rc=$?
if [[ $rc -eq 3 ]]; then
    # Some tracks could not be read (named above). The rest of the shard is stored; let the merge go ahead, and a
    # later `musimilar embed` retries the missing tracks.
    echo "shard ${SLURM_ARRAY_TASK_ID}/${SHARDS}: some tracks failed; the others are stored" >&2
    rc=0
fi
exit "$rc"

#!/usr/bin/env bash
# Train on several machines with several GPUs each: `torchrun ... -m musimilar train`.
#
# Run this script once on every node, with the same settings:
#
#   MUSIMILAR_HOME=/shared/musimilar-home MASTER_ADDR=node01 NNODES=2 NODE_RANK=0 examples/torchrun-multinode.sh
#   MUSIMILAR_HOME=/shared/musimilar-home MASTER_ADDR=node01 NNODES=2 NODE_RANK=1 examples/torchrun-multinode.sh
#
# Extra arguments go to `musimilar train` (e.g. --epochs 100 --minutes 600 --size large).
#
# Environment:
#   MUSIMILAR_HOME  the library home, on storage that every node mounts at the same path: every process reads the
#                   catalog and the spectrogram cache; only the main process (rank 0) writes
#   MASTER_ADDR     host name or address of the node that hosts the rendezvous (reachable from all nodes)
#   MASTER_PORT     a free TCP port on it (default: 29500)
#   NNODES          how many nodes (default: 2)
#   GPUS_PER_NODE   processes per node, one per GPU (default: the GPUs this node sees)
#   NODE_RANK       this node's number, 0 to NNODES-1 (default: $SLURM_NODEID under Slurm); static rendezvous only
#   RENDEZVOUS      static (default): node ranks fixed by NODE_RANK, the rendezvous on MASTER_ADDR:MASTER_PORT;
#                   c10d: torchrun's dynamic rendezvous on MASTER_ADDR:MASTER_PORT, which numbers the nodes itself
#                   (no NODE_RANK needed; RDZV_ID, default musimilar, must be the same on every node)
#
# Each process trains on its own slice of every batch (DistributedDataParallel, NCCL); the batch size is the global
# one. When training ends, the main process writes the model, then embeds and indexes the library (skip that with
# --no-index and run `musimilar embed` apart, e.g. sharded: examples/slurm-embed-array.sh).
#
# Convert first, on one machine (`musimilar convert /music`): `train DIR` would make every other process wait for
# the main one to convert DIR, and a long wait can outlast the process group's timeout. The same command on one
# machine is `torchrun --standalone --nproc-per-node 4 -m musimilar train`.
set -euo pipefail

: "${MUSIMILAR_HOME:?set MUSIMILAR_HOME to the shared library home}"
: "${MASTER_ADDR:?set MASTER_ADDR to the host name of the rendezvous node}"
export MUSIMILAR_HOME
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi --list-gpus | wc -l)}
RENDEZVOUS=${RENDEZVOUS:-static}

case $RENDEZVOUS in
    static)
        NODE_RANK=${NODE_RANK:-${SLURM_NODEID:?set NODE_RANK to this node number (0 to NNODES-1)}}
        rendezvous=(--node-rank "$NODE_RANK" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
        ;;
    c10d)
        rendezvous=(--rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv-id "${RDZV_ID:-musimilar}")
        ;;
    *)
        echo "RENDEZVOUS must be static or c10d, not $RENDEZVOUS" >&2
        exit 2
        ;;
esac

# --size base: a model for GPUs (small is the CPU-sized default); settings in $MUSIMILAR_HOME/musimilar.toml and
# MUSIMILAR_* variables apply as usual; arguments given to this script come last, so they win.
exec torchrun --nnodes "$NNODES" --nproc-per-node "$GPUS_PER_NODE" "${rendezvous[@]}" \
    -m musimilar train --device cuda --size base "$@"

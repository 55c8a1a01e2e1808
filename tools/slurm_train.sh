#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, started by srun; mmengine's
# slurm launcher reads the rank and world size from Slurm's variables.
# Usage:
#   [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS="..." PYTHON=python3] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR \
#       [train.py options...]
# e.g. 16 GPUs on two nodes:
#   GPUS=16 bash tools/slurm_train.sh gpu psf-r50 \
#       configs/panoptic_segformer/panoptic-segformer_r50_8xb1-50e_coco-panoptic.py \
#       work_dirs/psf-r50
# Needs CUDA on every node (the slurm launcher binds one GPU per task).
set -ex

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python3}
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"

if [ -z "$WORK_DIR" ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]" >&2
    exit 1
fi

# See dist_train.sh for the PYTHONPATH line.
# shellcheck disable=SC2086  # SRUN_ARGS holds several words on purpose
PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$TOOLS_DIR/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"

#!/usr/bin/env bash
# Distributed testing, one process per GPU.
# Usage: [NNODES=2 NODE_RANK=0 MASTER_ADDR=host PORT=29500 PYTHON=python3] \
#        bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]
set -e

CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python3}
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"

if [ -z "$CONFIG" ] || [ -z "$CHECKPOINT" ] || [ -z "$GPUS" ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
    exit 1
fi

# The package itself is installed; the repository root goes on PYTHONPATH
# (as in mmdet's scripts) only for modules of projects/ that a config may
# name in custom_imports, which are not part of the package.
# `python -m torch.distributed.run` is torchrun, bound to this python.
PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS_DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"

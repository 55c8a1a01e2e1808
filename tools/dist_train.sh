#!/usr/bin/env bash
# Distributed training on one or more nodes.
# Usage: [NNODES=2 NODE_RANK=0 MASTER_ADDR=host PORT=29500] \
#        bash tools/dist_train.sh CONFIG GPUS [train.py options...]
set -e

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"

if [ -z "$CONFIG" ] || [ -z "$GPUS" ]; then
    echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
    exit 1
fi

# `python -m torch.distributed.run` is torchrun, bound to this python
# (torch.distributed.launch is deprecated in torch 2.x).
PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

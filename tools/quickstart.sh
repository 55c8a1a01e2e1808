#!/usr/bin/env bash
# The main job on an embedded default: installs what is missing, writes the
# toy panoptic data set, pretrains the backbone on crops of its things,
# trains a small Panoptic SegFormer on the CPU, evaluates PQ and renders
# image | ground truth | prediction.
#   bash tools/quickstart.sh [--work-dir DIR] [--max-iters N] ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
PY=${PYTHON:-python3}
exec "$PY" projects/toy_panoptic/quickstart.py "$@"

#!/usr/bin/env bash
# Installs everything panseg_plugin needs into the current Python environment.
# Idempotent: a second run checks the installed versions and returns in seconds.
#
#   bash tools/install.sh            # runtime + tests
#   PYTHON=/path/to/python bash tools/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -c requirements/constraints.txt)

have() {  # have MODULE VERSION_PREFIX
  "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import importlib, sys
mod = importlib.import_module(sys.argv[1])
sys.exit(0 if mod.__version__.startswith(sys.argv[2]) else 1)
PYEOF
}

ops_ok() {
  "$PY" -c "from mmcv.ops import MultiScaleDeformableAttention; import mmcv._ext" 2>/dev/null
}

ready() {
  have torch 2.13.0 && have mmcv 2.1.0 && ops_ok && have mmdet 3.3 && have mmengine 0.10.7 \
    && "$PY" -c "import panopticapi, pycocotools, scipy, pytest, panseg_plugin" 2>/dev/null
}

if ready; then
  echo "[install] environment ready (torch 2.13.0, mmcv 2.1.0 with ops, mmdet 3.3, mmengine 0.10.7)"
  exit 0
fi

echo "[install] build prerequisites (torch 2.13.0, setuptools<81, wheel, ninja)"
"${PIP[@]}" -r requirements/build.txt

if ! (have mmcv 2.1.0 && ops_ok); then
  echo "[install] building mmcv 2.1.0 with ops (first time about 15-20 minutes on 2 cores; pip caches the wheel)"
  export MMCV_WITH_OPS=1
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && command -v nvcc >/dev/null; then
    export FORCE_CUDA=1
    echo "[install] CUDA found: building the CUDA kernels too"
  fi
  "$PY" -m pip uninstall -y mmcv >/dev/null 2>&1 || true
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" --no-build-isolation mmcv==2.1.0
  if ! ops_ok; then
    echo "[install] ERROR: mmcv was installed without compiled ops (mmcv._ext is missing)." >&2
    echo "[install] Remove it and rebuild: pip uninstall -y mmcv && pip cache remove mmcv &&" >&2
    echo "[install]   MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0" >&2
    exit 1
  fi
fi

echo "[install] mmdet, mmengine, panopticapi and the test tools"
"${PIP[@]}" -r requirements/runtime.txt -r requirements/tests.txt
"${PIP[@]}" --no-deps -e .

ready || { echo "[install] ERROR: environment still incomplete after install" >&2; exit 1; }
echo "[install] done"

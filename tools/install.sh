#!/usr/bin/env bash
# Installs what panseg_plugin needs into the current Python environment (the
# active virtualenv, or PYTHON=...) and keeps what is already there:
#   - torch: an installed torch (CPU or CUDA, >= 2.0) is never replaced; only
#     an environment without torch gets the tested torch==2.13.0.
#   - mmcv: an installed mmcv >= 2.0.0, < 2.2.0 whose compiled ops import is
#     kept. Otherwise mmcv 2.1.0 is built from source against the installed
#     torch; on a CUDA machine the command for OpenMMLab's prebuilt wheel is
#     printed first (a CUDA build from source takes much longer).
#   - the rest of requirements/runtime.txt and tests.txt, then an editable
#     install of this checkout. The tested pins of requirements/constraints.txt
#     apply to what has to be installed (numpy, opencv and setuptools too);
#     an installed torch, and an installed mmcv/mmdet/mmengine within the
#     supported ranges, are pinned as they are.
# On a complete environment it installs nothing and returns in seconds.
#
#   bash tools/install.sh
#   PYTHON=/path/to/venv/bin/python bash tools/install.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/install.sh
#       (where torch is missing: take the CPU wheel from that index)
#   bash tools/install.sh --print-constraints   # the pins it would apply here
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3}
PY=$("$PY" -c 'import sys; print(sys.executable)')
TORCH_FLOOR=2.0.0  # the lowest torch check_versions accepts
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT

# helper COMMAND: decisions from installed metadata (what pip itself sees).
helper() {
  "$PY" - "$REPO" "$TORCH_FLOOR" "$@" <<'PYEOF'
import importlib.util
import os
import sys

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # a bare environment: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version
from importlib import metadata

repo, torch_floor, command = sys.argv[1:4]
# The working directory (the checkout) must not count as installed.
if sys.path and sys.path[0] == '':
    sys.path.pop(0)


def installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(*names):
    reqs = []
    for name in names:
        with open(os.path.join(repo, 'requirements', f'{name}.txt')) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if line and not line.startswith('-'):
                    req = Requirement(line)
                    if req.marker is None or req.marker.evaluate():
                        reqs.append(req)
    return reqs


def torch_state():
    version = installed('torch')
    if version is None:
        return 'absent'
    if Version(version) < Version(torch_floor):
        return f'old {version}'
    return f'ok {version}'


def mmcv_state():
    version = installed('mmcv')
    if version is None:
        return 'absent'
    spec = {r.name: r.specifier for r in requirements('runtime')}['mmcv']
    if not spec.contains(version, prereleases=True):
        return f'out {version}'
    try:
        import mmcv._ext  # noqa: F401
        from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
    except Exception:  # an ABI mismatch raises OSError, not ImportError
        return f'noops {version}'
    return f'ok {version}'


def missing():
    """What keeps the environment from being complete, one per line."""
    out = []
    if not torch_state().startswith('ok'):
        out.append(f'torch>={torch_floor}')
    if not mmcv_state().startswith('ok'):
        out.append('mmcv with compiled ops')
    if importlib.util.find_spec('pkg_resources') is None:
        out.append('setuptools<82 (mmengine needs its pkg_resources)')
    for req in requirements('runtime', 'tests'):
        version = installed(req.name)
        if version is None or not req.specifier.contains(
                version, prereleases=True):
            out.append(str(req))
    # Found, not imported: an error in the code is no missing package.
    spec = importlib.util.find_spec('panseg_plugin')
    here = os.path.join(repo, 'panseg_plugin', '__init__.py')
    if spec is None or spec.origin is None or installed(
            'panseg_plugin') is None:
        out.append('panseg_plugin (editable install of this checkout)')
    elif not os.path.samefile(spec.origin, here):
        out.append(f'panseg_plugin (installed from {spec.origin}, not '
                   'this checkout)')
    else:
        declared = {str(Requirement(r)) for r in
                    metadata.requires('panseg_plugin') or []
                    if 'extra ==' not in r}
        if declared != {str(r) for r in requirements('runtime')}:
            out.append('panseg_plugin (its installed metadata predates '
                       'requirements/runtime.txt)')
    return out


def constraints():
    """constraints.txt, with the installed torch and the installed
    mmcv/mmdet/mmengine within the supported ranges pinned as they are
    (numpy, opencv and setuptools, without ranges of their own, stay at
    the tested pins)."""
    ranges = {r.name: r.specifier for r in requirements('runtime')
              if r.specifier}
    lines = []
    for req in requirements('constraints'):
        version = installed(req.name)
        keep = version is not None and (
            req.name == 'torch' or
            (req.name in ranges and
             ranges[req.name].contains(version, prereleases=True)))
        lines.append(f'{req.name}=={version}' if keep else str(req))
    return lines


if command == 'torch':
    print(torch_state())
elif command == 'mmcv':
    print(mmcv_state())
elif command == 'missing':
    problems = missing()
    if problems:
        print('; '.join(problems))
        sys.exit(1)
    print(', '.join(f'{name} {installed(name)}'
                    for name in ('torch', 'mmcv', 'mmdet', 'mmengine')))
elif command == 'constraints':
    print('\n'.join(constraints()))
elif command == 'cuda':  # prints e.g. "cu121 torch2.1" or nothing
    import torch
    if torch.version.cuda:  # a CUDA build, GPU visible here or not
        cuda = torch.version.cuda.replace('.', '')
        print(f"cu{cuda} torch{'.'.join(torch.__version__.split('.')[:2])}")
PYEOF
}

pip_install() {
  "$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" "$@"
}

if [ "${1:-}" = "--print-constraints" ]; then
  helper constraints
  exit 0
fi

if STATE=$(helper missing); then
  echo "[install] environment ready ($STATE, mmcv ops work): nothing to" \
    "install"
  exit 0
fi
echo "[install] missing: $STATE"

TORCH=$(helper torch)
case "$TORCH" in
  old*)
    echo "[install] ERROR: torch ${TORCH#old } is older than the $TORCH_FLOOR" \
      "panseg_plugin supports. This script never replaces an installed" \
      "torch: upgrade it yourself (https://pytorch.org/get-started/locally/)," \
      "then run it again (mmcv is rebuilt for the new torch)." >&2
    exit 1 ;;
  absent)
    echo "[install] no torch here: installing the tested torch==2.13.0"
    helper constraints > "$CONSTRAINTS"
    INDEX=()
    [ -n "${TORCH_INDEX_URL:-}" ] && INDEX=(--index-url "$TORCH_INDEX_URL")
    pip_install "${INDEX[@]}" torch ;;
  *)
    echo "[install] keeping the installed torch ${TORCH#ok }" ;;
esac

MMCV=$(helper mmcv)
if [ "${MMCV%% *}" = ok ]; then
  echo "[install] keeping the installed mmcv ${MMCV#ok } (compiled ops work)"
else
  echo "[install] mmcv: ${MMCV} -> building mmcv 2.1.0 with ops from source"
  CUDA=$(helper cuda)
  if [ -n "$CUDA" ]; then
    read -r CU TV <<<"$CUDA"
    echo "[install] CUDA torch found. OpenMMLab's prebuilt wheel for this pair"
    echo "[install] (if $CU/$TV is listed there) installs in seconds; stop here"
    echo "[install] (Ctrl-C) and run instead:"
    echo "[install]   pip install -U openmim && mim install \"mmcv==2.1.0\""
    echo "[install]   # or: pip install \"mmcv==2.1.0\" -f" \
      "https://download.openmmlab.com/mmcv/dist/$CU/$TV/index.html"
    echo "[install] pairs: https://mmcv.readthedocs.io/en/2.x/get_started/installation.html"
    if command -v nvcc >/dev/null; then
      export FORCE_CUDA=1
      echo "[install] building with the CUDA kernels (FORCE_CUDA=1)"
    fi
  fi
  "$PY" -m pip uninstall -y mmcv >/dev/null 2>&1 || true
  helper constraints > "$CONSTRAINTS"
  echo "[install] build prerequisites (setuptools<82, wheel, ninja)"
  pip_install -r requirements/build.txt
  echo "[install] compiling (about 15-20 minutes on 2 CPU cores; pip caches" \
    "the wheel)"
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  pip_install --no-build-isolation mmcv
  if [ "$(helper mmcv | cut -d' ' -f1)" != ok ]; then
    # e.g. a cached wheel built for another torch
    echo "[install] the cached mmcv wheel has no working ops: rebuilding"
    "$PY" -m pip uninstall -y mmcv >/dev/null 2>&1 || true
    pip_install --no-build-isolation --no-cache-dir mmcv
  fi
  if [ "$(helper mmcv | cut -d' ' -f1)" != ok ]; then
    echo "[install] ERROR: mmcv was installed without working compiled ops" \
      "(mmcv._ext). Rebuild it by hand: pip uninstall -y mmcv &&" \
      "MMCV_WITH_OPS=1 pip install --no-build-isolation --no-cache-dir" \
      "\"mmcv==2.1.0\"" >&2
    exit 1
  fi
fi

helper constraints > "$CONSTRAINTS"
if [[ "$STATE" == panseg_plugin* && "$STATE" != *"; "* ]]; then
  # every requirement is met (e.g. a second clone): pip need not resolve
  # them again
  echo "[install] this checkout (every requirement is installed)"
else
  echo "[install] mmdet, mmengine, panopticapi, the test tools, this checkout"
  SETUPTOOLS=()
  case "$STATE" in *pkg_resources*) SETUPTOOLS=("setuptools<82") ;; esac
  pip_install -r requirements/runtime.txt -r requirements/tests.txt \
    "${SETUPTOOLS[@]}"
fi
pip_install --no-deps -e .

if ! STATE=$(helper missing); then
  echo "[install] ERROR: still missing after the install: $STATE" >&2
  exit 1
fi
echo "[install] done: $STATE"

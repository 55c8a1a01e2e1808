"""Import-time checks of the OpenMMLab stack and a torch>=2.6 loading fix."""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

# (package, lowest allowed, first refused, install command)
REQUIRED = (
    ('mmcv', '2.0.0', '2.2.0',
     'MMCV_WITH_OPS=1 pip install --no-build-isolation "mmcv==2.1.0"'),
    ('mmdet', '3.3.0', '3.4.0', 'pip install "mmdet==3.3.0"'),
    ('mmengine', '0.10.0', '0.11.0', 'pip install "mmengine==0.10.7"'),
)


def _version_tuple(version):
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def check_versions():
    """Raise ImportError naming the exact install command for each package
    outside the tested range, and when mmcv lacks its compiled ops."""
    import importlib
    problems = []
    for name, low, high, fix in REQUIRED:
        try:
            version = importlib.import_module(name).__version__
        except ImportError:
            problems.append(f'{name} is not installed: {fix}')
            continue
        if not (_version_tuple(low) <= _version_tuple(version) <
                _version_tuple(high)):
            problems.append(f'{name}=={version} is installed but '
                            f'{low} <= {name} < {high} is required: {fix}')
    try:
        import mmcv._ext  # noqa: F401
    except ImportError:
        problems.append(
            'mmcv was built without its compiled ops (mmcv._ext is missing). '
            'Rebuild it: pip uninstall -y mmcv && MMCV_WITH_OPS=1 pip install '
            '--no-build-isolation --no-cache-dir "mmcv==2.1.0" '
            '(or run tools/install.sh)')
    if problems:
        raise ImportError('panseg_plugin cannot run with this environment:\n'
                          + '\n'.join(f'  - {p}' for p in problems))


def _load_trusted_local(filename, map_location):
    """Local checkpoint loader that keeps mmengine's own checkpoints loadable
    on torch >= 2.6, whose ``torch.load`` defaults to ``weights_only=True``
    and refuses the ``HistoryBuffer``/numpy objects mmengine stores for
    resuming. Local files are the user's own, hence trusted."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loading():
    """Register :func:`_load_trusted_local` for plain paths (idempotent)."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_trusted_local, force=True)

"""Import-time check of the OpenMMLab stack."""
MIM_MMCV = 'pip install -U openmim && mim install "mmcv>=2.0.0,<2.2.0"'

# The supported ranges (requirements/runtime.txt states the same for pip):
# (package, lowest supported, first refused or None, the command that
# installs a supported version). torch is no pip requirement of the
# plugin (it is the user's CPU or CUDA build), only checked here.
REQUIRED = (
    ('torch', '2.0.0', None,
     'install torch>=2.0.0 for your platform '
     '(https://pytorch.org/get-started/locally/), then rebuild mmcv for '
     f'it: {MIM_MMCV}'),
    ('mmcv', '2.0.0', '2.2.0',
     f'{MIM_MMCV} (a prebuilt wheel for your torch/CUDA; without one, '
     '`bash tools/install.sh` builds mmcv 2.1.0 from source)'),
    ('mmdet', '3.2.0', '3.4.0', 'pip install "mmdet>=3.2.0,<3.4.0"'),
    ('mmengine', '0.10.3', '1.0.0', 'pip install "mmengine>=0.10.3,<1.0.0"'),
)


def _has_module(name):
    """Whether ``name`` can be imported, without importing it."""
    import importlib.util
    import sys
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def check_versions():
    """Raise ImportError naming the exact install command for each package
    outside its supported range, when mmcv lacks its compiled ops, and when
    ``pkg_resources`` is missing (mmengine 0.10 resolves the ``mmdet::``
    config bases of every config of the plugin with it; setuptools >= 82
    no longer has it)."""
    import importlib

    from packaging.version import Version
    problems = []
    for name, low, high, fix in REQUIRED:
        try:
            version = importlib.import_module(name).__version__
        except ImportError:
            problems.append(f'{name} is not installed: {fix}')
            continue
        wanted = f'{name}>={low}' + (f',<{high}' if high else '')
        if Version(version) < Version(low) or (high and Version(version) >=
                                               Version(high)):
            problems.append(f'{name}=={version} is installed but {wanted} '
                            f'is required: {fix}')
    try:
        import mmcv._ext  # noqa: F401
    except (ImportError, OSError):
        problems.append(
            'mmcv was built without its compiled ops (mmcv._ext is missing '
            'or does not load with this torch). Reinstall it: pip uninstall '
            f'-y mmcv && {MIM_MMCV} (or, from source: MMCV_WITH_OPS=1 pip '
            'install --no-build-isolation --no-cache-dir "mmcv==2.1.0")')
    if not _has_module('pkg_resources'):
        problems.append(
            'pkg_resources is missing (setuptools >= 82 dropped it), and '
            'mmengine reads the `mmdet::` config bases with it: pip install '
            '"setuptools<82"')
    if problems:
        raise ImportError('panseg_plugin cannot run with this environment:\n'
                          + '\n'.join(f'  - {p}' for p in problems))

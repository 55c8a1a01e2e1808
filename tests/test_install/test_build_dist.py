"""``python -m build`` makes an sdist and a wheel (the wheel built from the
sdist, so the sdist is complete) that pass ``twine check``; the wheel holds
the package alone and, installed with ``--no-deps`` into a fresh virtualenv
over this environment, imports and registers its classes. Built without
build isolation (this environment's setuptools): nothing is downloaded.
About 15 s."""
import os
import os.path as osp
import shutil
import sys
import tarfile
import zipfile

import pytest
from install_helpers import REPO_ROOT, run

# What a copy of the working tree leaves out: git, caches, local outputs.
IGNORE = shutil.ignore_patterns('.git', '__pycache__', '*.egg-info',
                                'build', 'dist', 'work_dirs', 'data',
                                'outputs', '.pytest_cache', '*.pyc')


@pytest.fixture(scope='module')
def dists(tmp_path_factory):
    src = tmp_path_factory.mktemp('src') / 'panseg_plugin'
    shutil.copytree(REPO_ROOT, src, ignore=IGNORE)
    out = src.parent / 'dist'
    proc = run([sys.executable, '-m', 'build',
                '--no-isolation', '--outdir', out, src], cwd=src)
    assert proc.returncode == 0, proc.stdout[-4000:]
    wheels = sorted(out.glob('*.whl'))
    sdists = sorted(out.glob('*.tar.gz'))
    assert len(wheels) == len(sdists) == 1, os.listdir(out)
    return wheels[0], sdists[0]


def test_twine_check_passes(dists):
    proc = run([sys.executable, '-m', 'twine',
                'check', '--strict', *dists])
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count('PASSED') == 2, proc.stdout


def test_wheel_holds_the_package_only(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {name.split('/')[0] for name in names}
    assert tops == {'panseg_plugin', wheel.name.split('-py3')[0] +
                    '.dist-info'}, tops
    assert 'panseg_plugin/__init__.py' in names
    assert not [n for n in names if '/tests/' in n or 'work_dirs' in n]
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(f'{wheel.name.split("-py3")[0]}.dist-info/METADATA')
    requires = [line.split(':', 1)[1].strip()
                for line in meta.decode().splitlines()
                if line.startswith('Requires-Dist:') and 'extra ==' not in
                line]
    assert not [r for r in requires if r.startswith(('torch', 'setuptools'))]
    assert not [r for r in requires if '==' in r], requires


def test_sdist_carries_what_setup_py_reads(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        names = {name.split('/', 1)[1] for name in tf.getnames()
                 if '/' in name}
    for name in ('setup.py', 'README.md', 'requirements/runtime.txt',
                 'requirements/tests.txt', 'requirements/optional.txt',
                 'requirements/build.txt', 'panseg_plugin/__init__.py'):
        assert name in names
    assert not [n for n in names if n.startswith(('tests/', 'work_dirs/'))]


@pytest.mark.timeout(180)
def test_wheel_installs_imports_and_registers(dists, venv, tmp_path):
    wheel, _ = dists
    proc = venv.pip('install', '--no-deps', '--quiet', wheel)
    assert proc.returncode == 0, proc.stdout
    code = ('import panseg_plugin; from mmdet.registry import MODELS; '
            'print(panseg_plugin.__file__); '
            'print(MODELS.get("PanopticSegFormer").__name__)')
    proc = run([venv.python, '-c', code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert osp.realpath(lines[-2]).startswith(osp.realpath(venv.site))
    assert lines[-1] == 'PanopticSegFormer'

"""tools/install.sh keeps what is installed: on a complete environment it
installs nothing (``pip freeze`` unchanged, a few seconds); the pins it
would apply keep an installed torch and an mmcv/mmdet/mmengine within the
supported ranges; an unsupported torch stops it before any change."""
import os
import os.path as osp
import re
import sys

import pytest
import torch
from install_helpers import REPO_ROOT, run
from packaging.version import Version

from panseg_plugin.utils.env_check import REQUIRED

INSTALL = osp.join(REPO_ROOT, 'tools', 'install.sh')


def install_sh(*args, python=sys.executable, timeout=120):
    env = dict(os.environ, PYTHON=str(python))
    return run(['bash', INSTALL, *args], env=env, timeout=timeout)


def freeze(python):
    proc = run([python, '-m', 'pip', 'freeze', '--all'])
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.mark.timeout(120)
def test_complete_environment_installs_nothing(venv):
    before = freeze(sys.executable), freeze(venv.python)
    for python in (sys.executable, venv.python):
        proc = install_sh(python=python)
        assert proc.returncode == 0, proc.stdout
        assert 'nothing to install' in proc.stdout, proc.stdout
    assert (freeze(sys.executable), freeze(venv.python)) == before


def pins(python):
    """The constraints install.sh would apply for ``python``."""
    proc = install_sh('--print-constraints', python=python)
    assert proc.returncode == 0, proc.stdout
    return dict(re.match(r'([A-Za-z0-9_.-]+)(.*)', line).groups()
                for line in proc.stdout.split())


def test_pins_keep_the_users_torch_and_mmcv(venv):
    venv.fake_dist('torch', '2.1.0+cu121')
    venv.fake_dist('mmcv', '2.0.1')
    venv.fake_dist('mmengine', '0.10.3')
    venv.fake_dist('mmdet', '3.1.0')  # outside the supported range
    got = pins(venv.python)
    assert got['torch'] == '==2.1.0+cu121'
    assert got['mmcv'] == '==2.0.1'
    assert got['mmengine'] == '==0.10.3'
    assert got['mmdet'] == '==3.3.0'  # the tested pin replaces it
    assert got['numpy'] == '<2'


def test_pins_keep_this_torch(venv):
    assert pins(venv.python)['torch'] == '==' + torch.__version__


def test_bare_environment_gets_the_tested_torch(tmp_path):
    """No torch at all (a venv of its own, with pip): the tested pin, never
    an open range that would pull a CUDA build."""
    bare = tmp_path / 'bare'
    proc = run([sys.executable, '-m', 'venv', bare])
    assert proc.returncode == 0, proc.stdout
    got = pins(bare / 'bin' / 'python')
    assert got['torch'] == '==2.13.0'
    assert got['mmcv'] == '==2.1.0'


def test_unsupported_torch_stops_before_any_change(venv):
    venv.fake_dist('torch', '1.13.1')
    before = freeze(venv.python)
    proc = install_sh(python=venv.python)
    assert proc.returncode == 1, proc.stdout
    assert 'torch 1.13.1 is older than the 2.0.0' in proc.stdout
    assert 'never replaces an installed torch' in proc.stdout
    assert freeze(venv.python) == before


def test_install_sh_floor_is_the_import_check_floor():
    floors = {name: low for name, low, _, _ in REQUIRED}
    with open(INSTALL) as f:
        floor = re.search(r'^TORCH_FLOOR=(\S+)', f.read(), re.M).group(1)
    assert Version(floor) == Version(floors['torch'])

"""The package's requirements are the supported ranges, not the tested pins:
no torch, no setuptools, no exact versions, and the same ranges as the
import-time check."""
import os.path as osp
from importlib import metadata

from install_helpers import REPO_ROOT
from packaging.requirements import Requirement
from packaging.version import Version

from panseg_plugin.utils.env_check import REQUIRED


def read(name):
    with open(osp.join(REPO_ROOT, 'requirements', f'{name}.txt')) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [Requirement(line) for line in lines if line]


def test_installed_metadata_has_ranges_only():
    requires = [Requirement(r) for r in metadata.requires('panseg_plugin')
                if 'extra ==' not in r]
    names = {r.name for r in requires}
    assert {'mmcv', 'mmdet', 'mmengine'} <= names
    assert not names & {'torch', 'torchvision', 'setuptools',
                        'opencv-python', 'opencv-python-headless'}
    assert not [str(r) for r in requires
                if any(s.operator in ('==', '===') for s in r.specifier)]
    assert {str(r) for r in requires} == {str(r) for r in read('runtime')}


def test_runtime_ranges_are_the_import_check_ranges():
    ranges = {r.name: r.specifier for r in read('runtime')}
    for name, low, high, _ in REQUIRED:
        if name == 'torch':
            assert name not in ranges
            continue
        expected = {f'>={low}', f'<{high}'}
        assert {str(s) for s in ranges[name]} == expected, name


def test_tested_pins_lie_in_the_supported_ranges():
    pins = {r.name: r.specifier for r in read('constraints')}
    for name, low, high, _ in REQUIRED:
        (pin, ) = pins[name]
        assert pin.operator == '==', name
        version = Version(pin.version)
        assert Version(low) <= version, name
        assert high is None or version < Version(high), name

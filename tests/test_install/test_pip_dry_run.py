"""``pip install`` of the plugin into a user's environment keeps its torch,
mmcv and numpy: a dry run (``--dry-run --report``) in a fresh virtualenv
over this environment, whose torch and mmcv metadata say what a GPU machine
would have (torch 2.1 + CUDA 12.1, an OpenMMLab mmcv 2.0.1 wheel). numpy is
this environment's: a numpy 2 would be changed, as panopticapi-lite (every
release) requires numpy<2. Nothing is downloaded: every requirement is
satisfied already. A few seconds each."""
import json

import pytest
from install_helpers import REPO_ROOT

USER_STACK = dict(torch='2.1.0+cu121', mmcv='2.0.1')
KEPT = ('torch', 'mmcv', 'numpy', 'mmdet', 'mmengine', 'opencv-python',
        'opencv-python-headless')


@pytest.mark.timeout(180)
@pytest.mark.parametrize('target', [['.'], ['-e', '.']],
                         ids=['install', 'editable'])
def test_dry_run_keeps_the_users_torch_mmcv_numpy(venv, tmp_path, target):
    for name, version in USER_STACK.items():
        venv.fake_dist(name, version)
    listed = venv.pip('list', '--format', 'json')
    assert listed.returncode == 0, listed.stdout
    versions = {d['name']: d['version'] for d in json.loads(
        listed.stdout[listed.stdout.index('['):])}
    assert {n: versions[n] for n in USER_STACK} == USER_STACK

    report = tmp_path / 'report.json'
    proc = venv.pip('install', '--dry-run', '--quiet', '--report', report,
                    *target, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout
    with open(report) as f:
        planned = {item['metadata']['name'].lower():
                   item['metadata']['version']
                   for item in json.load(f)['install']}
    assert not set(planned) & set(KEPT), planned
    assert set(planned) == {'panseg-plugin'} or set(planned) == {
        'panseg_plugin'}, planned

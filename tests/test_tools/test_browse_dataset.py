"""mmdet's own ``browse_dataset.py`` (shipped in the mmdet wheel) draws the
toy data sets of the plugin's configs, panoptic and instance mode."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import mmdet
import pytest

from toy_panoptic import make_toy_panoptic

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
BROWSE = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                  'analysis_tools', 'browse_dataset.py')
CONFIGS = osp.join(ROOT, 'projects', 'toy_panoptic', 'configs')


@pytest.mark.skipif(not osp.isfile(BROWSE),
                    reason='mmdet install without its .mim tools')
@pytest.mark.parametrize('config', [
    'panoptic-segformer_r18-tiny_toy-panoptic.py',
    'panoptic-segformer_r18-tiny_toy-instance.py'
])
def test_mmdet_browse_dataset_draws_the_toy_set(tmp_path, config):
    size = (72, 56)
    make_toy_panoptic(str(tmp_path / 'data'), num_train=3, num_val=1,
                      img_size=size, seed=0)
    out_dir = tmp_path / 'browse'
    proc = subprocess.run(
        [sys.executable, BROWSE, osp.join(CONFIGS, config), '--not-show',
         '--output-dir', str(out_dir), '--cfg-options',
         f'train_dataloader.dataset.data_root={tmp_path / "data"}/'],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(os.listdir(out_dir))
    assert names == ['000001.jpg', '000002.jpg', '000003.jpg']
    drawn = cv2.imread(str(out_dir / names[0]))
    assert drawn.shape == (size[1], size[0], 3)

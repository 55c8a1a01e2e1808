"""projects/toy_panoptic/profile_training.py on a tiny toy data set."""
import os.path as osp

from panseg_plugin.testing import load_script
from toy_panoptic import make_toy_panoptic

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def _tool():
    path = osp.join(ROOT, 'projects', 'toy_panoptic', 'profile_training.py')
    return load_script(path, 'profile_training')


def test_stage_timer_records_after_warmup_only():
    timer = _tool().StageTimer()
    for step in range(3):
        timer.run('a', lambda: None)
        timer.run('a', lambda: None)
        timer.next_iteration(record=step >= 1)
    assert len(timer.times['a']) == 2  # the warm-up step is dropped
    assert all(t >= 0 for t in timer.times['a'])


def test_profile_reports_every_stage(tmp_path, capsys):
    data = tmp_path / 'data'
    make_toy_panoptic(str(data), num_train=12, num_val=2, img_size=64)
    _tool().main(['--data-root', str(data), '--iters', '1', '--warmup', '1',
                  '--cfg-options', 'train_dataloader.batch_size=2',
                  'train_dataloader.num_workers=0',
                  'train_dataloader.persistent_workers=False'])
    out = capsys.readouterr().out
    for stage in ('data loading', 'backbone + neck', 'encoder',
                  'location decoder', 'head forward', 'training targets',
                  'matching', 'losses', 'backward', 'optimiser step',
                  'mmengine loop', 'crop batch'):
        assert stage in out, stage

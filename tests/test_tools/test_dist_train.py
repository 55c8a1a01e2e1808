"""Two-process training through ``tools/dist_train.sh`` on the toy config.

Without CUDA, ``tools/train.py --launcher pytorch`` trains with gloo and a
CPU DistributedDataParallel; with CUDA it is mmengine's own path. A module
imported by every rank (through the config's ``custom_imports``) records
what its rank trained on, the weights it ended with, and, with an audit
hook (``sys.addaudithook``), every file it wrote into the work directory.
About 40 s on 2 CPU cores.
"""
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CONFIG = osp.join(REPO_ROOT, 'projects', 'toy_panoptic', 'configs',
                      'panoptic-segformer_r18-tiny_toy-panoptic.py')

RECORD_MODULE = '''
import atexit
import json
import os
import os.path as osp
import sys

import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS

RECORD_DIR = os.environ['DIST_RECORD_DIR']
WORK_DIR = osp.realpath(os.environ['DIST_RECORD_WORK_DIR'])
RANK = int(os.environ.get('RANK', '0'))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
record = dict(rank=RANK, written=[], runs=[])


def _in_work_dir(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return None
    path = osp.realpath(path)
    return osp.relpath(path, WORK_DIR) if path.startswith(WORK_DIR) else None


def _audit(event, args):
    if event == 'open':
        path, mode, flags = args
        writes = (any(c in mode for c in 'wax+') if isinstance(mode, str)
                  else bool(flags & WRITE_FLAGS))
        rel = _in_work_dir(path) if writes else None
        if rel is not None:
            record['written'].append(rel)
    elif event in ('os.rename', 'os.replace', 'shutil.copyfile'):
        rel = _in_work_dir(args[1])
        if rel is not None:
            record['written'].append(rel)


sys.addaudithook(_audit)


@atexit.register
def _dump():
    with open(osp.join(RECORD_DIR, f'rank{RANK}.json'), 'w') as f:
        json.dump(record, f)


def _params(runner):
    model = getattr(runner.model, 'module', runner.model)
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@HOOKS.register_module()
class DistTrainRecordHook(Hook):
    priority = 'LOWEST'

    def before_train(self, runner):
        self.run = dict(start_iter=runner.iter,
                        world_size=runner.world_size,
                        wrapper=type(runner.model).__name__,
                        samples=[])
        record['runs'].append(self.run)
        torch.save(_params(runner), osp.join(
            RECORD_DIR, f'start_iter{runner.iter}_rank{RANK}.pth'))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.run['samples'].append(sorted(
            osp.basename(s.img_path) for s in data_batch['data_samples']))

    def after_train(self, runner):
        self.run['end_iter'] = runner.iter
        torch.save(_params(runner), osp.join(
            RECORD_DIR, f'end_iter{runner.iter}_rank{RANK}.pth'))
'''

DERIVED_CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
data_root = {data_root!r}
model = dict(backbone=dict(init_cfg=None))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
val_dataloader = None
val_cfg = None
val_evaluator = None
train_cfg = dict(max_iters=2, val_interval=1000)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, max_keep_ckpts=-1))
custom_hooks = {hooks!r} + [dict(type='DistTrainRecordHook')]
randomness = dict(seed=0)
'''


TEST_CONFIG = '''
_base_ = [{base!r}]
data_root = {data_root!r}
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
test_evaluator = [dict(
    type='PanopticSegFormerCocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/')]
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(config, work_dir, record_dir, extra=()):
    env = dict(os.environ)
    env.update(
        PORT=str(free_port()),
        PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(
            [str(record_dir.parent), env.get('PYTHONPATH', '')]),
        DIST_RECORD_DIR=str(record_dir),
        DIST_RECORD_WORK_DIR=str(work_dir),
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
         str(config), '2', '--work-dir', str(work_dir), *extra],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:]
    records = []
    for rank in (0, 1):
        with open(record_dir / f'rank{rank}.json') as f:
            records.append(json.load(f))
    return records


def load(path):
    return torch.load(path, map_location='cpu')


def ckpt_params(path, names):
    state = torch.load(path, map_location='cpu',
                       weights_only=False)['state_dict']
    return {name: state[name] for name in names}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def check_run(records, start, end, written_by_rank0):
    for rank, record in enumerate(records):
        assert record['rank'] == rank
        (run, ) = record['runs']
        assert (run['start_iter'], run['end_iter']) == (start, end)
        assert run['world_size'] == 2
        wrapper = ('MMDistributedDataParallel'
                   if not torch.cuda.is_available() else run['wrapper'])
        assert run['wrapper'] == wrapper
        assert len(run['samples']) == end - start
    # each iteration: two samples per rank, none shared between the ranks
    for step0, step1 in zip(records[0]['runs'][0]['samples'],
                            records[1]['runs'][0]['samples']):
        assert len(step0) == len(step1) == 2
        assert not set(step0) & set(step1), (step0, step1)
    # rank 1 wrote nothing into the work dir, rank 0 its checkpoints + logs
    assert records[1]['written'] == []
    written = set(records[0]['written'])
    assert written_by_rank0 <= written, written
    assert any(path.endswith('.log') for path in written), written
    assert any(path.endswith('scalars.json') for path in written), written


@pytest.mark.timeout(300)
@pytest.mark.skipif(sys.platform == 'win32', reason='needs bash')
@pytest.mark.skipif(
    torch.cuda.is_available() and torch.cuda.device_count() < 2,
    reason='with CUDA, two processes need two GPUs (one each)')
def test_dist_train_two_processes_and_resume(tmp_path):
    data_root = tmp_path / 'data'
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                  'make_toy_panoptic.py'),
         str(data_root), '--num-train', '8', '--num-val', '1',
         '--img-size', '64', '--seed', '0'],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout

    record_dir = tmp_path / 'modules' / 'records'
    record_dir.mkdir(parents=True)
    (tmp_path / 'modules' / 'dist_record_hook.py').write_text(RECORD_MODULE)
    base = Config.fromfile(TOY_CONFIG).to_dict()
    config = tmp_path / 'dist_toy.py'
    config.write_text(DERIVED_CONFIG.format(
        base=TOY_CONFIG,
        imports=list(base['custom_imports']['imports']) +
        ['dist_record_hook'],
        data_root=str(data_root) + '/',
        hooks=base.get('custom_hooks', [])))
    work_dir = tmp_path / 'work'

    records = dist_train(config, work_dir, record_dir)
    check_run(records, 0, 2, {'iter_2.pth', 'last_checkpoint'})
    # both ranks saw 4 different images of the 8 in the two iterations
    seen = [sum(r['runs'][0]['samples'], []) for r in records]
    assert len(set(seen[0]) | set(seen[1])) == 8
    end = [load(record_dir / f'end_iter2_rank{r}.pth') for r in (0, 1)]
    assert_same(end[0], end[1])
    assert_same(end[0], ckpt_params(work_dir / 'iter_2.pth', end[0]))
    start = load(record_dir / 'start_iter0_rank0.pth')
    assert any(not torch.equal(start[k], end[0][k]) for k in start)

    for name in os.listdir(record_dir):
        if name.endswith('.json'):
            os.remove(record_dir / name)
    # resumed with the encoder checkpointed (mmdet's num_cp) where
    # fairscale is there: the same state-dict keys, DDP over the
    # recomputed layers
    checkpointing = ['model.encoder.num_cp=1'] if importlib.util.find_spec(
        'fairscale') else []
    records = dist_train(config, work_dir, record_dir,
                         ['--resume', '--cfg-options',
                          'train_cfg.max_iters=4', *checkpointing])
    check_run(records, 2, 4, {'iter_4.pth', 'last_checkpoint'})
    for rank in (0, 1):  # resumed from iter_2.pth's weights
        assert_same(load(record_dir / f'start_iter2_rank{rank}.pth'),
                    end[0])
    end = [load(record_dir / f'end_iter4_rank{r}.pth') for r in (0, 1)]
    assert_same(end[0], end[1])
    assert_same(end[0], ckpt_params(work_dir / 'iter_4.pth', end[0]))
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip().endswith('iter_4.pth')
    logs = [name for _, _, files in os.walk(work_dir) for name in files
            if name.endswith('.log')]
    assert len(logs) == 2, logs  # one per run, both rank 0's

    # the trained checkpoint evaluates through tools/dist_test.sh, 2 ranks
    test_config = tmp_path / 'dist_toy_test.py'
    test_config.write_text(TEST_CONFIG.format(
        base=TOY_CONFIG, data_root=str(data_root) + '/'))
    env = dict(os.environ, PORT=str(free_port()), PYTHON=sys.executable,
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_test.sh'),
         str(test_config),
         str(work_dir / 'iter_4.pth'), '2', '--work-dir',
         str(tmp_path / 'test')],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'coco_panoptic/PQ' in proc.stdout

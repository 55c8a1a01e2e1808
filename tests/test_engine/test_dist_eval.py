"""Evaluation split over two processes (gloo on the CPU) gives exactly the
PQ of one process.

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``, so each
process here initialises the gloo process group itself and builds a runner
with ``launcher='none'``: the sampler, the evaluator's
``collect_results`` and the logger then see the group's rank and world
size, while the model stays unwrapped.

Five images, two processes, two images a batch: the sampler pads rank 1
with a repeat of the first image and ``collect_results`` must drop it.
The predictions are the ground truth with deterministic damage (a dropped
thing, a relabelled stuff region) so that PQ, SQ and RQ are neither 0 nor
100 and every image counts.
"""
import json
import os
import os.path as osp
import socket

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from toy_training import make_tiny_toy, toy_train_cfg

NUM_VAL = 5


class DamagedGroundTruth(BaseModel):
    """Predicts each image's ground truth read from its panoptic PNG, minus
    the first thing on odd image ids and with the first stuff region
    relabelled on image ids divisible by 3."""

    def __init__(self, num_classes, num_things):
        super().__init__()
        self.num_classes, self.num_things = num_classes, num_things
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        raise NotImplementedError

    def test_step(self, data):
        return [self._predict(s) for s in data['data_samples']]

    val_step = test_step

    def _predict(self, sample):
        import mmcv
        from panopticapi.utils import rgb2id
        ids = rgb2id(mmcv.imread(sample.seg_map_path, channel_order='rgb'))
        pan = np.full(ids.shape, self.num_classes, np.int64)  # VOID
        things = stuff = 0
        img_id = sample.img_id
        for seg in sample.segments_info:
            label = seg['category']
            if label < self.num_things:
                things += 1
                if things == 1 and img_id % 2:
                    continue
                pan[ids == seg['id']] = label + things * INSTANCE_OFFSET
            else:
                stuff += 1
                if stuff == 1 and img_id % 3 == 0:
                    label = self.num_things + (
                        label - self.num_things + 1) % (
                            self.num_classes - self.num_things)
                pan[ids == seg['id']] = label
        pred = DetDataSample(metainfo=sample.metainfo)
        pred.pred_panoptic_seg = PixelData(sem_seg=torch.from_numpy(pan)[None])
        return pred


def _test_cfg(data_root, out_dir):
    cfg = toy_train_cfg(data_root)
    loader = cfg.test_dataloader
    loader.batch_size = 2
    loader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'seg_map_path', 'segments_info'))
    ]
    ann = dict(ann_file=osp.join(data_root, 'annotations',
                                 'panoptic_val.json'),
               seg_prefix=osp.join(data_root, 'annotations', 'panoptic_val'))
    evaluator = [
        # ours first: mmdet's metric writes into the predictions it reads
        # (on the CPU), ours reads a copy
        dict(type='PanopticSegFormerCocoPanopticMetric', prefix='ours',
             **ann),
        # (gt, prediction) pairs gathered and prediction PNGs read back
        # from a folder all processes share.
        dict(type='PanopticSegFormerCocoPanopticMetric', prefix='outfile',
             nproc=1, outfile_prefix=osp.join(out_dir, 'results'), **ann),
        dict(type='CocoPanopticMetric', prefix='mmdet', **ann),
    ]
    return loader, evaluator


def evaluate(data_root, out_dir, name):
    """Metrics of :class:`DamagedGroundTruth` on the toy val set, in this
    process's share of the default process group (if any)."""
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner
    register_all_modules(init_default_scope=False)
    import panseg_plugin.evaluation.metrics  # noqa: F401
    loader, evaluator = _test_cfg(data_root, out_dir)
    classes = 6
    runner = Runner(
        model=DamagedGroundTruth(classes, 3),
        work_dir=out_dir,
        experiment_name=name,
        default_scope='mmdet',
        test_dataloader=loader,
        test_cfg=dict(type='TestLoop'),
        test_evaluator=evaluator,
        launcher='none',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    return runner.test()


def _worker(rank, world_size, port, data_root, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # collect_results writes its parts under ./.dist_test.
    os.chdir(out_dir)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        metrics = evaluate(data_root, out_dir, f'dist_eval_rank{rank}')
        if rank == 0:
            with open(osp.join(out_dir, 'metrics.json'), 'w') as f:
                json.dump(metrics, f)
    finally:
        torch_dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_tiny_toy(tmp_path_factory.mktemp('toy_dist'), num_val=NUM_VAL)


@pytest.mark.skipif(not torch_dist.is_available() or
                    not torch_dist.is_gloo_available(),
                    reason='needs torch.distributed with gloo')
def test_two_processes_give_the_pq_of_one(toy, tmp_path):
    single_dir = str(tmp_path / 'single')
    os.makedirs(single_dir)
    single = evaluate(toy['data_root'], single_dir, 'dist_eval_single')

    dist_dir = str(tmp_path / 'dist')
    os.makedirs(dist_dir)
    mp.spawn(_worker, args=(2, _free_port(), toy['data_root'], dist_dir),
             nprocs=2, join=True)
    with open(osp.join(dist_dir, 'metrics.json')) as f:
        distributed = json.load(f)

    assert distributed == single
    # The damage makes a non-trivial score, the same whichever way it is
    # collected and computed.
    assert 0 < single['mmdet/PQ'] < 100
    assert 0 < single['mmdet/PQ_th'] < 100
    assert 0 < single['mmdet/PQ_st'] < 100
    for key in ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st',
                'SQ_st', 'RQ_st'):
        assert single[f'ours/{key}'] == single[f'mmdet/{key}']
        assert single[f'outfile/{key}'] == pytest.approx(
            single[f'mmdet/{key}'])


def test_padding_would_change_the_pq(toy, tmp_path):
    """Sensitivity of the test above: counting rank 1's padded repeat of
    the first image (what collect_results must drop) changes PQ."""
    from mmdet.evaluation import CocoPanopticMetric
    loader, _ = _test_cfg(toy['data_root'], str(tmp_path))
    from mmengine.runner import Runner
    dataloader = Runner.build_dataloader(loader, seed=0)
    model = DamagedGroundTruth(6, 3)
    samples = [p.to_dict() for batch in dataloader
               for p in model.test_step(batch)]
    scores = []
    for subset in (samples, samples + samples[:1]):
        metric = CocoPanopticMetric(
            ann_file=osp.join(toy['data_root'], 'annotations',
                              'panoptic_val.json'),
            seg_prefix=osp.join(toy['data_root'], 'annotations',
                                'panoptic_val'))
        metric.dataset_meta = dataloader.dataset.metainfo
        metric.process({}, subset)
        scores.append(metric.evaluate(len(subset))['coco_panoptic/PQ'])
    assert scores[0] != scores[1]

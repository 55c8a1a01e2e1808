"""Backbone pretraining on toy thing crops, and its use by the quick start
and the Mask2Former benchmark."""
import argparse
import os.path as osp

import pytest
import torch

from panseg_plugin.testing import load_script
from toy_panoptic import experiment, make_toy_panoptic, pretrain, thing_crops

PROJECT = osp.join(osp.dirname(__file__), '..', '..', 'projects',
                   'toy_panoptic')
CONFIG = osp.join(PROJECT, 'configs',
                  'panoptic-segformer_r18-tiny_toy-panoptic.py')
M2F_CONFIG = osp.join(PROJECT, 'configs',
                      'mask2former_r18-tiny_toy-panoptic.py')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy'))
    make_toy_panoptic(root, num_train=10, num_val=2, img_size=96, seed=5)
    return root


def _centroid(mask):
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean())


def test_crops_centre_or_fit_the_thing(toy_root):
    native = thing_crops.ThingCrops(toy_root, crop_size=48)
    fit = thing_crops.ThingCrops(toy_root, crop_size=48, scale='fit')
    assert len(native.anns) == len(fit.anns) > 0
    for i in range(len(native.anns)):
        img, mask, label = native[i]
        assert img.shape == (3, 48, 48) and mask.shape == (1, 48, 48)
        assert label in (0, 1, 2)
        # the box is centred: a thing cut by the border may sit off centre
        ann = native.anns[i]
        x, y, w, h = ann['bbox']
        if 0 < x and x + w < 96 and 0 < y and y + h < 96:
            cx, cy = _centroid(mask)
            assert abs(cx - 23.5) < 0.3 * w + 1
            assert abs(cy - 23.5) < 0.3 * h + 1
        # 'fit' scales the longer box side to 48 / 1.3 pixels
        _, fit_mask, fit_label = fit[i]
        assert fit_label == label
        rows = torch.nonzero(fit_mask[0].amax(1) > 0.5).squeeze(1)
        cols = torch.nonzero(fit_mask[0].amax(0) > 0.5).squeeze(1)
        side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
        assert abs(int(side) - 48 / 1.3) <= 3


def test_mask_pooling_matches_a_naive_loop():
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    masks = (torch.rand(2, 1, 16, 16) > 0.5).float()
    out = thing_crops.pooled_features(feats, masks, 'mask')
    assert out.shape == (2, 10)
    for b in range(2):
        expected = []
        for feat in feats:
            size = 16 // feat.size(-1)
            weight = masks[b, 0].unfold(0, size, size).unfold(
                1, size, size).mean(dim=(-1, -2))
            expected.append((feat[b] * weight).sum((1, 2)) / weight.sum())
        assert torch.allclose(out[b], torch.cat(expected), atol=1e-5)
    mean = thing_crops.pooled_features(feats, masks, 'mean')
    assert torch.allclose(mean, feats[-1].mean(dim=(2, 3)))


def test_weights_train_save_and_load_into_both_toy_detectors(
        toy_root, tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import panseg_plugin  # noqa: F401
    out = str(tmp_path / 'pre' / 'backbone.pth')
    result = pretrain.pretrain_backbone(
        toy_root, out, CONFIG, iters=2, batch_size=4, held_out=4,
        log_interval=1, meta=dict(tag=1))
    assert [step for step, _ in result['curve']] == [1, 2]
    assert 0.0 <= result['held_out_acc'] <= 1.0
    assert not osp.exists(out + '.tmp')
    saved = torch.load(out, map_location='cpu')
    assert saved['meta']['tag'] == 1 and saved['meta']['iters'] == 2

    register_all_modules()
    for config in (CONFIG, M2F_CONFIG):
        cfg = Config.fromfile(config)
        cfg.model.backbone.init_cfg.checkpoint = out
        model = MODELS.build(cfg.model)
        model.init_weights()
        loaded = model.backbone.state_dict()
        assert set(saved['state_dict']) == set(loaded)
        for key, value in saved['state_dict'].items():
            assert torch.equal(loaded[key], value), key


def test_quickstart_reuses_matching_weights_and_redoes_stale_ones(
        toy_root, tmp_path, capsys):
    from mmengine.config import Config
    args = argparse.Namespace(data_root=toy_root, pretrain_iters=2, seed=0)
    out = str(tmp_path / 'backbone.pth')
    cfg = Config.fromfile(CONFIG)
    assert experiment.prepare_backbone(cfg, args, out) == out
    assert cfg.model.backbone.init_cfg.checkpoint == out
    first = osp.getmtime(out)
    assert 'held-out accuracy' in capsys.readouterr().out

    # same data and settings: reused, also by Mask2Former's config
    cfg = Config.fromfile(M2F_CONFIG)
    experiment.prepare_backbone(cfg, args, out)
    assert 'reused' in capsys.readouterr().out
    assert osp.getmtime(out) == first
    assert cfg.model.backbone.init_cfg.checkpoint == out

    # other settings: pretrained again
    args.pretrain_iters = 3
    experiment.prepare_backbone(Config.fromfile(CONFIG), args, out)
    assert 'held-out accuracy' in capsys.readouterr().out
    assert torch.load(out)['meta']['iters'] == 3

    # an unreadable file is replaced, with a message
    with open(out, 'wb') as f:
        f.write(b'not a checkpoint')
    experiment.prepare_backbone(Config.fromfile(CONFIG), args, out)
    assert 'cannot read' in capsys.readouterr().out
    assert torch.load(out)['meta']['iters'] == 3

    # 0 steps: from scratch, nothing to load
    args.pretrain_iters = 0
    cfg = Config.fromfile(CONFIG)
    assert experiment.prepare_backbone(cfg, args, out) is None
    assert cfg.model.backbone.init_cfg is None


def test_bad_arguments_name_the_fix(tmp_path, toy_root):
    with pytest.raises(FileNotFoundError, match='make_toy_panoptic'):
        thing_crops.ThingCrops(str(tmp_path))
    with pytest.raises(ValueError, match='fit or native'):
        thing_crops.ThingCrops(toy_root, scale='zoom')
    # a data set of stuff only: nothing to pretrain on, and the way out
    stuff_only = str(tmp_path / 'stuff_only')
    make_toy_panoptic(stuff_only, num_train=3, num_val=1, img_size=64,
                      stuff_only_ratio=1.0)
    with pytest.raises(ValueError, match='--pretrain-iters 0'):
        thing_crops.ThingCrops(stuff_only)


def test_command_line_writes_the_backbone(toy_root, tmp_path, capsys):
    cli = load_script(osp.join(PROJECT, 'pretrain_backbone.py'),
                      'toy_pretrain_cli')
    out = tmp_path / 'b.pth'
    result = cli.main(['--data-root', toy_root, '--out', str(out),
                       '--iters', '1', '--log-interval', '1'])
    assert [step for step, _ in result['curve']] == [1]
    assert f'written: {out}' in capsys.readouterr().out
    assert torch.load(out)['meta']['iters'] == 1


def test_crop_batch_is_the_stack_of_its_crops(toy_root):
    # one normalisation for the batch, the same numbers as crop by crop
    batched = thing_crops.ThingCrops(toy_root, crop_size=32, jitter=4.0)
    single = thing_crops.ThingCrops(toy_root, crop_size=32, jitter=4.0)
    ids = [2, 0, 1, 2]
    imgs, masks, labels = batched.batch(ids)
    crops = [single[i] for i in ids]
    assert imgs.shape == (4, 3, 32, 32) and masks.shape == (4, 1, 32, 32)
    assert imgs.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(imgs, torch.stack([c[0] for c in crops]))
    assert torch.equal(masks, torch.stack([c[1] for c in crops]))
    assert labels.tolist() == [c[2] for c in crops]

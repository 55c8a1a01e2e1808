"""Fine-tuning on a data set with another class count (docs/custom_dataset.md):
a checkpoint of the tiny model with 3 thing + 2 stuff classes loads into one
with 4 + 3; only the classification branch is skipped (and named), every
other weight is the checkpoint's, and the new model trains."""
import logging

import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

from panseg_plugin.testing import (demo_panoptic_batch,
                                   tiny_panoptic_segformer_cfg)

# the weights whose shape depends on the class count: one linear layer
# shared by every decoder layer, (num_things + num_stuff) outputs
CLASS_KEYS = {'bbox_head.cls_branch.weight', 'bbox_head.cls_branch.bias'}


class Collect(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def build(num_things, num_stuff, seed):
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    model = MODELS.build(tiny_panoptic_segformer_cfg(
        num_things_classes=num_things, num_stuff_classes=num_stuff))
    model.init_weights()
    return model


def coco_like_checkpoint(tmp_path, prefix=''):
    """A checkpoint of the 3 + 2 model (``module.`` keys as DDP saves)."""
    source = build(3, 2, seed=0).state_dict()
    path = str(tmp_path / 'source.pth')
    torch.save(dict(state_dict={prefix + k: v for k, v in source.items()},
                    meta=dict()), path)
    return path, source


def check_loaded(model, fresh, source):
    """Every key of the checkpoint's shape is the checkpoint's; the others
    keep their fresh initialisation. Returns the skipped keys."""
    skipped = set()
    for key, value in model.state_dict().items():
        if value.shape == source[key].shape:
            assert torch.equal(value, source[key]), key
        else:
            assert torch.equal(value, fresh[key]), key
            skipped.add(key)
    return skipped


def test_load_checkpoint_skips_and_names_the_class_branch(tmp_path):
    path, source = coco_like_checkpoint(tmp_path, prefix='module.')
    model = build(4, 3, seed=1)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    logger = logging.getLogger('finetune_test')
    collect = Collect()
    logger.addHandler(collect)
    # mmengine's default revise_keys drops the DDP prefix "module."
    load_checkpoint(model, path, map_location='cpu', strict=False,
                    logger=logger)
    logger.removeHandler(collect)
    assert check_loaded(model, fresh, source) == CLASS_KEYS
    message = '\n'.join(collect.messages)
    for key in CLASS_KEYS:
        assert f'size mismatch for {key}' in message
    assert 'torch.Size([5, 32])' in message
    assert 'torch.Size([7, 32])' in message
    assert 'missing keys' not in message and 'unexpected key' not in message


def test_load_from_in_a_config_does_the_same(tmp_path, capsys):
    """``load_from = CHECKPOINT`` (what tools/train.py passes to mmengine's
    runner) loads non-strictly; mmengine prints the skipped keys to the
    console (``print_log`` without a logger), not into the log file."""
    path, source = coco_like_checkpoint(tmp_path)
    model_cfg = tiny_panoptic_segformer_cfg(num_things_classes=4,
                                            num_stuff_classes=3)
    runner = Runner(model=model_cfg, work_dir=str(tmp_path / 'work'),
                    load_from=path, default_scope='mmdet',
                    experiment_name='finetune_load_from')
    fresh = {k: v.clone() for k, v in runner.model.state_dict().items()}
    capsys.readouterr()
    runner.load_or_resume()
    assert check_loaded(runner.model, fresh, source) == CLASS_KEYS
    printed = capsys.readouterr().out
    for key in CLASS_KEYS:
        assert f'size mismatch for {key}' in printed


def test_the_new_model_trains_on_its_classes(tmp_path):
    path, _ = coco_like_checkpoint(tmp_path)
    model = build(4, 3, seed=1)
    load_checkpoint(model, path, map_location='cpu', strict=False,
                    logger='silent')
    batch = demo_panoptic_batch(stuff_labels=((4, 6), (5, )),
                                num_things_classes=4)
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grad = model.bbox_head.cls_branch.weight.grad
    assert grad.shape == (7, 32) and torch.isfinite(grad).all()

"""The converter of the authors' released checkpoints.

Synthetic "released" checkpoints are built from the official R50 key list
(``../shared/parity/official_r50/keys.tsv``) and, for PVTv2-B5 and Swin-L,
from backbone key lists derived here from the authors' backbone code (their
module names and shapes; their backbone code could not be run). Values are
meta tensors where only keys and shapes matter.
"""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine import Config

from panseg_plugin.models.utils.panoptic_segformer_cvpr22_checkpoint import (
    DEAD_PREFIXES, convert_official_state_dict, official_backbone_converter)
from panseg_plugin.testing import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_helpers(path):
    """The fixture helpers next to the released-model tests, by path."""
    return load_script(path, 'official_r50')


_official = _load_helpers(REPO_ROOT / 'tests' / 'test_models' /
                          'test_released' / 'official_r50.py')
CONFIG_DIR, R50_CONFIG = _official.CONFIG_DIR, _official.R50_CONFIG
needs_fixtures = _official.needs_fixtures
official_keys = _official.official_keys
to_release_names = _official.to_release_names

pytestmark = needs_fixtures

TOOL = REPO_ROOT / 'tools' / 'model_converters' / \
    'panoptic_segformer_cvpr22_to_mmdet.py'
PVT_CONFIG = CONFIG_DIR / \
    'panoptic-segformer-cvpr22_pvtv2-b5_8xb1-24e_coco-panoptic.py'
SWIN_CONFIG = CONFIG_DIR / ('panoptic-segformer-cvpr22_swin-l-p4-w7-224-'
                            'in22k_8xb1-24e_coco-panoptic.py')


def load_tool():
    return load_script(TOOL, 'cvpr22_to_mmdet')


def build(config):
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


def layout(state):
    return {key: tuple(value.shape) for key, value in state.items()}


@pytest.fixture(scope='module')
def r50():
    return build(R50_CONFIG)


def indexed_official_state():
    """Official R50 state dict whose i-th tensor is filled with i."""
    return {
        key: torch.full(shape, float(i)) if len(shape) else torch.tensor(i)
        for i, (key, shape) in enumerate(official_keys())
    }


@pytest.mark.parametrize('module_prefix', [False, True])
@pytest.mark.parametrize('generation', ['release', 'renamed'])
def test_both_key_generations_load_strictly(r50, module_prefix, generation):
    official = indexed_official_state()
    state = to_release_names(official, module_prefix) \
        if generation == 'release' else {
            ('module.' if module_prefix else '') + k: v
            for k, v in official.items()}
    converted, dropped = convert_official_state_dict(state,
                                                     return_dropped=True)
    r50.load_state_dict(converted, strict=True)
    # only the two unused branches are dropped, all of them
    prefix = 'module.' if module_prefix else ''
    names = [k[len(prefix):] for k in dropped]
    assert len(dropped) == 32
    assert all(k.startswith(('bbox_head.reg_branches2.',
                             'bbox_head.cls_branches2.'
                             if generation == 'release' else
                             'bbox_head.cls_thing_branches.'))
               for k in names)
    assert len(converted) == 955 - 32
    # spot checks of the mapping: the value tells the source key
    index = {k: i for i, (k, _) in enumerate(official_keys())}
    expect = {
        'bbox_head.transformer.level_embeds': 'level_embed',
        'bbox_head.transformer.decoder.layers.2.attentions.0.attn.'
        'in_proj_weight': 'decoder.layers.2.self_attn.attn.in_proj_weight',
        'bbox_head.things_mask_head.blocks.1.attn.k.weight':
        'bbox_head.things_mask_decoder.layers.1.cross_attn.k_proj.weight',
        'bbox_head.things_mask_head.attnen.linear_l3.0.bias':
        'bbox_head.things_mask_decoder.tail_mask_fusion.level_fcs.2.bias',
        'bbox_head.stuff_mask_head.blocks.5.norm3.weight':
        'bbox_head.stuff_mask_decoder.layers.5.self_attn_norm.weight',
        'bbox_head.stuff_mask_head.blocks.0.mlp.fc2.weight':
        'bbox_head.stuff_mask_decoder.layers.0.ffn.layers.1.weight',
    }
    for source, target in expect.items():
        assert converted[target].flatten()[0] == index[source]


def test_unknown_keys_are_refused_by_name():
    state = to_release_names(indexed_official_state(), module_prefix=True)
    state['module.bbox_head.mask_head.blocks.0.attn.gate.weight'] = \
        torch.zeros(1)
    state['module.bbox_head.extra_branch.0.bias'] = torch.zeros(1)
    with pytest.raises(KeyError) as error:
        convert_official_state_dict(state)
    message = str(error.value)
    assert 'module.bbox_head.mask_head.blocks.0.attn.gate.weight' in message
    assert 'module.bbox_head.extra_branch.0.bias' in message
    assert '2 key(s)' in message


def test_released_keys_load_directly_in_memory(r50):
    """load_from / DetInferencer on a released file: the detector converts
    in _load_from_state_dict, with torch's and mmengine's loaders."""
    from mmengine.runner.checkpoint import load_state_dict
    state = to_release_names(indexed_official_state())
    r50.load_state_dict(
        to_release_names(indexed_official_state(), module_prefix=True),
        strict=True)
    assert r50.level_embed.flatten()[0] == [
        i for i, (k, _) in enumerate(official_keys())
        if k == 'bbox_head.transformer.level_embeds'][0]
    load_state_dict(r50, dict(state), strict=True)
    # a converted (plugin) checkpoint loads unchanged
    r50.load_state_dict(r50.state_dict(), strict=True)


def test_tool_writes_an_mmengine_checkpoint(tmp_path):
    from mmdet.datasets import CocoPanopticDataset
    state = to_release_names(
        {k: torch.empty(s, device='meta') for k, s in official_keys()},
        module_prefix=True)
    src, dst = tmp_path / 'panoptic_segformer_r50_2x.pth', tmp_path / 'o.pth'
    torch.save(dict(meta=dict(mmcv_version='1.3.4', epoch=24,
                              CLASSES=('person', 'bicycle'),
                              config='model = dict()'),
                    state_dict=state), src)
    output = load_tool().convert(str(src), str(dst), config=str(R50_CONFIG))
    written = torch.load(dst, map_location='cpu', weights_only=True)
    assert written['meta']['dataset_meta']['classes'] == \
        CocoPanopticDataset.METAINFO['classes']
    assert len(written['meta']['dataset_meta']['classes']) == 133
    assert written['meta']['source_meta'] == dict(mmcv_version='1.3.4',
                                                  epoch=24)
    assert len(written['meta']['dropped_keys']) == 32
    assert layout(written['state_dict']) == layout(output['state_dict'])


def test_tool_refuses_a_layout_that_does_not_fit(tmp_path):
    state = {k: torch.empty(s, device='meta') for k, s in official_keys()}
    state['bbox_head.stuff_query.weight'] = torch.empty(54, 512,
                                                        device='meta')
    src = tmp_path / 'bad.pth'
    torch.save(dict(state_dict=state), src)
    with pytest.raises(KeyError, match='bbox_head.stuff_query.weight'):
        load_tool().convert(str(src), str(tmp_path / 'o.pth'),
                            config=str(R50_CONFIG))


def official_pvtv2_b5_backbone():
    """Keys and shapes of the authors' ``pvt_v2_b5`` (their module names:
    patch_embed{i}, block{i}.{j}.{norm1, attn.{q, kv, proj, sr, norm},
    norm2, mlp.{fc1, dwconv.dwconv, fc2}}, norm{i})."""
    dims, depths, srs, ratio = [64, 128, 320, 512], [3, 6, 40, 3], \
        [8, 4, 2, 1], 4
    keys, in_dim = {}, 3
    for i, (dim, depth, sr) in enumerate(zip(dims, depths, srs), 1):
        kernel = 7 if i == 1 else 3
        embed = f'patch_embed{i}'
        keys[f'{embed}.proj.weight'] = (dim, in_dim, kernel, kernel)
        keys[f'{embed}.proj.bias'] = (dim, )
        keys[f'{embed}.norm.weight'] = keys[f'{embed}.norm.bias'] = (dim, )
        for j in range(depth):
            b = f'block{i}.{j}'
            for norm in ('norm1', 'norm2'):
                keys[f'{b}.{norm}.weight'] = keys[f'{b}.{norm}.bias'] = (dim,)
            keys[f'{b}.attn.q.weight'] = (dim, dim)
            keys[f'{b}.attn.q.bias'] = (dim, )
            keys[f'{b}.attn.kv.weight'] = (2 * dim, dim)
            keys[f'{b}.attn.kv.bias'] = (2 * dim, )
            keys[f'{b}.attn.proj.weight'] = (dim, dim)
            keys[f'{b}.attn.proj.bias'] = (dim, )
            if sr > 1:
                keys[f'{b}.attn.sr.weight'] = (dim, dim, sr, sr)
                keys[f'{b}.attn.sr.bias'] = (dim, )
                keys[f'{b}.attn.norm.weight'] = (dim, )
                keys[f'{b}.attn.norm.bias'] = (dim, )
            hidden = dim * ratio
            keys[f'{b}.mlp.fc1.weight'] = (hidden, dim)
            keys[f'{b}.mlp.fc1.bias'] = (hidden, )
            keys[f'{b}.mlp.dwconv.dwconv.weight'] = (hidden, 1, 3, 3)
            keys[f'{b}.mlp.dwconv.dwconv.bias'] = (hidden, )
            keys[f'{b}.mlp.fc2.weight'] = (dim, hidden)
            keys[f'{b}.mlp.fc2.bias'] = (dim, )
        keys[f'norm{i}.weight'] = keys[f'norm{i}.bias'] = (dim, )
        in_dim = dim
    return keys, dims[1:]


def official_swin_l_backbone():
    """Keys and shapes of the authors' Swin-L (Swin-Transformer-Object-
    Detection names: patch_embed, layers.{i}.blocks.{j}.{norm1, attn.{
    relative_position_bias_table, relative_position_index, qkv, proj},
    norm2, mlp.{fc1, fc2}}, layers.{i}.downsample.{reduction, norm},
    norm{1,2,3} for the outputs)."""
    embed, depths, heads, window = 192, [2, 2, 18, 2], [6, 12, 24, 48], 7
    keys = {
        'patch_embed.proj.weight': (embed, 3, 4, 4),
        'patch_embed.proj.bias': (embed, ),
        'patch_embed.norm.weight': (embed, ),
        'patch_embed.norm.bias': (embed, )
    }
    dims = [embed * 2**i for i in range(4)]
    for i, (dim, depth, head) in enumerate(zip(dims, depths, heads)):
        for j in range(depth):
            b = f'layers.{i}.blocks.{j}'
            for norm in ('norm1', 'norm2'):
                keys[f'{b}.{norm}.weight'] = keys[f'{b}.{norm}.bias'] = (dim,)
            keys[f'{b}.attn.relative_position_bias_table'] = (
                (2 * window - 1)**2, head)
            keys[f'{b}.attn.relative_position_index'] = (window**2,
                                                         window**2)
            keys[f'{b}.attn.qkv.weight'] = (3 * dim, dim)
            keys[f'{b}.attn.qkv.bias'] = (3 * dim, )
            keys[f'{b}.attn.proj.weight'] = (dim, dim)
            keys[f'{b}.attn.proj.bias'] = (dim, )
            keys[f'{b}.mlp.fc1.weight'] = (4 * dim, dim)
            keys[f'{b}.mlp.fc1.bias'] = (4 * dim, )
            keys[f'{b}.mlp.fc2.weight'] = (dim, 4 * dim)
            keys[f'{b}.mlp.fc2.bias'] = (dim, )
        if i < 3:
            d = f'layers.{i}.downsample'
            keys[f'{d}.reduction.weight'] = (2 * dim, 4 * dim)
            keys[f'{d}.norm.weight'] = keys[f'{d}.norm.bias'] = (4 * dim, )
    for i in (1, 2, 3):
        keys[f'norm{i}.weight'] = keys[f'norm{i}.bias'] = (dims[i], )
    return keys, dims[1:]


@pytest.mark.parametrize('config, backbone', [
    (PVT_CONFIG, official_pvtv2_b5_backbone),
    (SWIN_CONFIG, official_swin_l_backbone),
])
def test_pvtv2_b5_and_swin_l_key_coverage(config, backbone):
    """A synthetic release of their layout converts onto the config's
    model: every key covered, every shape equal, nothing left over."""
    backbone_keys, neck_in = backbone()
    state = {'backbone.' + k: torch.empty(s, device='meta')
             for k, s in backbone_keys.items()}
    for key, shape in official_keys():
        if key.startswith('backbone.'):
            continue
        conv = key.startswith('neck.convs.') and key.endswith('conv.weight')
        if conv:  # the 1x1 convs read the backbone's channels
            shape = (256, neck_in[int(key.split('.')[2])], 1, 1)
        elif key == 'neck.extra_convs.0.conv.weight':
            shape = (256, neck_in[-1], 3, 3)
        state[key] = torch.empty(shape, device='meta')
    state = to_release_names(state, module_prefix=True)
    model = build(config)
    converted = convert_official_state_dict(
        state, official_backbone_converter(type(model.backbone).__name__))
    assert layout(converted) == layout(model.state_dict())
    assert not any(k.startswith(DEAD_PREFIXES) for k in converted)

"""Helpers for the parity tests against the authors' released code.

The reference outputs live in ``../shared/parity/official_r50`` (the
repository root's sibling ``shared/``): outputs of the authors' own code for
their R50 config, run with deterministic synthetic weights. The helpers
regenerate those weights from the official key names, exactly as the
fixtures' README defines them, so that a test can convert and load them.
"""
import ast
import math
import os
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from mmdet.structures import DetDataSample

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURES = REPO_ROOT.parent / 'shared' / 'parity' / 'official_r50'
CONFIG_DIR = REPO_ROOT / 'configs' / 'panoptic_segformer'
R50_CONFIG = CONFIG_DIR / \
    'panoptic-segformer-cvpr22_r50_8xb1-24e_coco-panoptic.py'

# Locally the fixtures may be absent: skip. In CI they must be there.
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir() and os.environ.get('CI') != 'true',
    reason=f'parity fixtures not found at {FIXTURES} (the repository '
    "root's sibling shared/parity/official_r50)")


def fixture_path(name: str) -> Path:
    """Path of a fixture file; fails (CI) if the directory is missing."""
    if not FIXTURES.is_dir():
        pytest.fail(f'CI=true but the parity fixtures are missing: expected '
                    f'{FIXTURES} (shared/parity/official_r50 next to the '
                    'repository root)')
    return FIXTURES / name


def load_fixture(name: str) -> dict:
    """A fixture file; they hold tensors, numbers, strings, lists, dicts."""
    return torch.load(fixture_path(name), map_location='cpu',
                      weights_only=True)


def official_keys() -> List[Tuple[str, Tuple[int, ...]]]:
    """The 955 (key, shape) pairs of the official R50 model, in order."""
    rows = []
    for line in fixture_path('keys.tsv').read_text().splitlines():
        if line.strip():
            key, shape = line.split('\t')
            rows.append((key, tuple(ast.literal_eval(shape))))
    return rows


def official_value(key: str, shape: Tuple[int, ...],
                   seed_prefix: str = '') -> torch.Tensor:
    """The fixtures' weight function ``value(key, shape)`` (README §1).

    ``seed_prefix`` is prepended to the key for the CRC-32 seed; the
    fixtures use ''. Another prefix gives another, equally valid, weight
    set.
    """
    if key.endswith('num_batches_tracked'):
        return torch.zeros(shape, dtype=torch.int64)
    generator = torch.Generator().manual_seed(
        zlib.crc32((seed_prefix + key).encode()))
    n = torch.randn(shape, generator=generator, dtype=torch.float32)
    if key.endswith('running_var'):
        return 1 + 0.1 * n.abs()
    if key.endswith('running_mean'):
        return 0.1 * n
    if key.endswith(('query_embedding.weight', 'stuff_query.weight',
                     'level_embeds')):
        return n
    if key.endswith('attnen.q.weight'):
        return (4 * n) / math.sqrt(shape[1])
    if len(shape) == 1:
        return 1 + 0.1 * n if key.endswith('weight') else 0.05 * n
    return n / math.sqrt(math.prod(shape[1:]))


def official_state_dict(keys: List[Tuple[str, Tuple[int, ...]]],
                        seed_prefix: str = '',
                        overrides: Dict[str, torch.Tensor] = None
                        ) -> 'OrderedDict[str, torch.Tensor]':
    """Synthetic official state dict (new key names) plus overrides."""
    state = OrderedDict(
        (key, official_value(key, shape, seed_prefix)) for key, shape in keys)
    for key, value in (overrides or {}).items():
        state[key] = value.clone()
    return state


def to_release_names(state: Dict[str, torch.Tensor],
                     module_prefix: bool = False,
                     cls_branches2: bool = True
                     ) -> 'OrderedDict[str, torch.Tensor]':
    """Rename new-generation keys to the names of the released files."""
    out = OrderedDict()
    for key, value in state.items():
        key = key.replace('.things_mask_head.', '.mask_head.')
        key = key.replace('.stuff_mask_head.', '.mask_head2.')
        if cls_branches2:
            key = key.replace('.cls_thing_branches.', '.cls_branches2.')
        out[('module.' if module_prefix else '') + key] = value
    return out


def data_sample(meta: dict) -> DetDataSample:
    """mmdet 3 data sample of a fixture's meta (batch 1, no padding)."""
    scale = meta['scale_factor']
    return DetDataSample(
        metainfo=dict(
            img_shape=tuple(meta['img_shape'][:2]),
            ori_shape=tuple(meta['ori_shape'][:2]),
            batch_input_shape=tuple(meta['batch_input_shape'][:2]),
            scale_factor=(scale[0], scale[1])))


def official_panoptic(pan_seg: torch.Tensor, category_ids: List[int],
                      num_things: int = 80,
                      num_classes: int = 133) -> torch.Tensor:
    """mmdet panoptic map (H, W) -> the official (H, W, 2) map of
    (COCO category id, instance id)."""
    out = torch.zeros(*pan_seg.shape, 2, dtype=torch.int32)
    label = pan_seg % 1000
    inst = pan_seg // 1000
    lut = torch.tensor(list(category_ids) + [0], dtype=torch.int32)
    out[..., 0] = lut[label.clamp(max=num_classes)]
    out[..., 1] = torch.where(label < num_things, inst,
                              torch.zeros_like(inst)).int()
    return out


def _linear(state: Dict[str, torch.Tensor], name: str,
            x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(x, state[name + '.weight'],
                                      state[name + '.bias'])


def _layer_norm(state: Dict[str, torch.Tensor], name: str,
                x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.layer_norm(
        x, x.shape[-1:], state[name + '.weight'], state[name + '.bias'],
        1e-6)


def reference_attention(state: Dict[str, torch.Tensor], name: str,
                        x: torch.Tensor, memory: torch.Tensor,
                        shapes: List[Tuple[int, int]], tail: bool,
                        heads: int = 8, pre_relu: bool = False):
    """Mask attention of the release written from the specification
    (official key names, independent of the plugin's modules).

    With ``pre_relu`` (tails only) the mask is returned before its final
    ReLU, for the calibration of the tails' last linear layer."""
    b, n, c = x.shape
    d = c // heads
    q = _linear(state, name + '.q', x).reshape(b, n, heads, d)
    k = _linear(state, name + '.k', memory).reshape(b, -1, heads, d)
    logits = torch.einsum('bnhd,blhd->bhnl', q, k) * d**-0.5
    maps = logits.permute(0, 2, 3, 1)  # (B, N, L, h)
    h1, w1 = shapes[0]
    feats, start = [], 0
    for level, (h, w) in enumerate(shapes):
        chunk = maps[:, :, start:start + h * w]
        start += h * w
        f = torch.relu(_linear(state, f'{name}.linear_l{level + 1}.0',
                               chunk))
        if level:
            f = f.permute(0, 1, 3, 2).reshape(b * n, heads, h, w)
            f = torch.nn.functional.interpolate(
                f, (h1, w1), mode='bilinear', align_corners=False)
            f = f.permute(0, 2, 3, 1).reshape(b, n, h1 * w1, heads)
        feats.append(f)
    mask = _linear(state, name + '.linear.0', torch.cat(feats, -1))
    if not pre_relu:
        mask = torch.relu(mask)
    mask = mask[..., 0].reshape(b, n, h1, w1)
    if tail:
        return mask
    v = _linear(state, name + '.v', memory).reshape(b, -1, heads, d)
    out = torch.einsum('bhnl,blhd->bnhd', logits.softmax(-1), v)
    return _linear(state, name + '.proj', out.reshape(b, n, c)), mask


def reference_mask_head(state: Dict[str, torch.Tensor], name: str,
                        query: torch.Tensor, pos, memory: torch.Tensor,
                        shapes: List[Tuple[int, int]], heads: int = 8):
    """A released mask head (``bbox_head.things_mask_head`` or
    ``bbox_head.stuff_mask_head``) from the specification: returns the tail
    mask, the block masks and the block queries."""
    num_blocks = len({
        k.split('.')[3]
        for k in state if k.startswith(name + '.blocks.')
    })
    masks, queries = [], []
    for j in range(num_blocks):
        block = f'{name}.blocks.{j}'
        x = query if pos is None else query + pos
        if block + '.self_attention.qkv.weight' in state:
            b, n, c = x.shape
            qkv = _linear(state, block + '.self_attention.qkv', x).reshape(
                b, n, 3, heads, c // heads)
            q, k, v = qkv.unbind(2)
            attn = torch.einsum('bnhd,bmhd->bhnm', q, k) * (c // heads)**-0.5
            s = torch.einsum('bhnm,bmhd->bnhd', attn.softmax(-1), v)
            s = _linear(state, block + '.self_attention.proj',
                        s.reshape(b, n, c))
            x = _layer_norm(state, block + '.norm3', x + s)
        out, mask = reference_attention(state, block + '.attn', x, memory,
                                        shapes, False, heads)
        x = _layer_norm(state, block + '.head_norm1', x + out)
        hidden = torch.nn.functional.gelu(_linear(state, block + '.mlp.fc1',
                                                  x))
        x = _layer_norm(state, block + '.head_norm2',
                        x + _linear(state, block + '.mlp.fc2', hidden))
        masks.append(mask)
        queries.append(x)
        query = x
    x = query if pos is None else query + pos
    tail = reference_attention(state, name + '.attnen', x, memory, shapes,
                               True, heads)
    return tail, masks, queries


def calibrate_tail(state: Dict[str, torch.Tensor], name: str,
                   query: torch.Tensor, pos, memory: torch.Tensor,
                   shapes: List[Tuple[int, int]]) -> Dict[str, torch.Tensor]:
    """The fixtures' calibration of a tail's Linear(24, 1) (README §2):
    map its pre-ReLU outputs affinely to q10 ~ 0.1, q50 = 0.5, q90 ~ 0.9.
    """
    _, _, queries = reference_mask_head(state, name, query, pos, memory,
                                        shapes)
    x = queries[-1] if pos is None else queries[-1] + pos
    raw = reference_attention(state, name + '.attnen', x, memory, shapes,
                              True, pre_relu=True).flatten()
    q10, q50, q90 = torch.quantile(raw, torch.tensor([0.1, 0.5, 0.9]))
    a = 0.8 / (q90 - q10)
    c = 0.5 - a * q50
    weight = state[name + '.attnen.linear.0.weight']
    bias = state[name + '.attnen.linear.0.bias']
    return {
        name + '.attnen.linear.0.weight': a * weight,
        name + '.attnen.linear.0.bias': a * bias + c
    }

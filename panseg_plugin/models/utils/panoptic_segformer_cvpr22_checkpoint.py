"""Key conversion of the authors' released Panoptic SegFormer checkpoints.

The five released ``.pth`` files (GitHub release v1.0 of the authors'
repository) are mmcv 1.x checkpoints whose ``state_dict`` uses the names of
the authors' code, possibly with a ``module.`` prefix and in one of two key
generations: the release predates a rename of ``mask_head`` ->
``things_mask_head``, ``mask_head2`` -> ``stuff_mask_head`` and
(presumably) ``cls_branches2`` -> ``cls_thing_branches``. This module maps
every key onto :class:`PanopticSegFormerCVPR22` and drops only the two
branches that neither inference nor the losses use.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple, Union

from torch import Tensor

# The authors' loader's own renames of the older key generation. Plain
# substrings: '.mask_head.' does not match '.mask_head2.'.
OLD_KEY_ALIASES: Tuple[Tuple[str, str], ...] = (
    ('.mask_head.', '.things_mask_head.'),
    ('.mask_head2.', '.stuff_mask_head.'),
    ('.cls_branches2.', '.cls_thing_branches.'),
)

# Branches of the released head that are never used: per-block thing boxes
# and classes, whose losses the authors' code multiplies by 0.
DEAD_PREFIXES: Tuple[str, ...] = ('bbox_head.reg_branches2.',
                                  'bbox_head.cls_thing_branches.')

_MASK_BLOCK_RULES: Tuple[Tuple[str, str], ...] = (
    (r'attn\.q\.', 'cross_attn.q_proj.'),
    (r'attn\.k\.', 'cross_attn.k_proj.'),
    (r'attn\.v\.', 'cross_attn.v_proj.'),
    (r'attn\.proj\.', 'cross_attn.out_proj.'),
    (r'attn\.linear_l([1-9])\.0\.', 'mask_fusion.level_fcs.{0}.'),
    (r'attn\.linear\.0\.', 'mask_fusion.mask_fc.'),
    (r'self_attention\.qkv\.', 'self_attn.qkv.'),
    (r'self_attention\.proj\.', 'self_attn.proj.'),
    (r'norm3\.', 'self_attn_norm.'),
    (r'head_norm1\.', 'cross_attn_norm.'),
    (r'head_norm2\.', 'ffn_norm.'),
    (r'mlp\.fc1\.', 'ffn.layers.0.0.'),
    (r'mlp\.fc2\.', 'ffn.layers.1.'),
)
_MASK_TAIL_RULES: Tuple[Tuple[str, str], ...] = (
    (r'attnen\.q\.', 'tail_q_proj.'),
    (r'attnen\.k\.', 'tail_k_proj.'),
    (r'attnen\.linear_l([1-9])\.0\.', 'tail_mask_fusion.level_fcs.{0}.'),
    (r'attnen\.linear\.0\.', 'tail_mask_fusion.mask_fc.'),
)
# Deformable DETR parts: the authors' mmdet 2.x names -> mmdet 3.x
# DeformableDETR (box refinement) names.
_TRANSFORMER_RULES: Tuple[Tuple[str, str], ...] = (
    (r'bbox_head\.transformer\.encoder\.layers\.(\d+)\.attentions\.0\.',
     'encoder.layers.{0}.self_attn.'),
    (r'bbox_head\.transformer\.encoder\.layers\.(\d+)\.ffns\.0\.',
     'encoder.layers.{0}.ffn.'),
    (r'bbox_head\.transformer\.encoder\.layers\.(\d+)\.norms\.',
     'encoder.layers.{0}.norms.'),
    (r'bbox_head\.transformer\.decoder\.layers\.(\d+)\.attentions\.0\.',
     'decoder.layers.{0}.self_attn.'),
    (r'bbox_head\.transformer\.decoder\.layers\.(\d+)\.attentions\.1\.',
     'decoder.layers.{0}.cross_attn.'),
    (r'bbox_head\.transformer\.decoder\.layers\.(\d+)\.ffns\.0\.',
     'decoder.layers.{0}.ffn.'),
    (r'bbox_head\.transformer\.decoder\.layers\.(\d+)\.norms\.',
     'decoder.layers.{0}.norms.'),
    (r'bbox_head\.transformer\.level_embeds$', 'level_embed'),
    (r'bbox_head\.transformer\.reference_points\.', 'reference_points_fc.'),
    (r'bbox_head\.query_embedding\.', 'query_embedding.'),
    (r'bbox_head\.cls_branches\.(\d+)\.', 'bbox_head.cls_branches.{0}.'),
    (r'bbox_head\.reg_branches\.(\d+)\.', 'bbox_head.reg_branches.{0}.'),
    (r'bbox_head\.cls_stuff_branches\.(\d+)\.',
     'bbox_head.cls_stuff_branches.{0}.'),
    (r'bbox_head\.stuff_query\.weight$', 'bbox_head.stuff_query.weight'),
    (r'neck\.', 'neck.'),
)
_MASK_HEADS = {
    'things_mask_head': 'things_mask_decoder',
    'stuff_mask_head': 'stuff_mask_decoder'
}


def _apply_rule(pattern: str, replacement: str, key: str) -> Optional[str]:
    """Replace the matched prefix of ``key``; level numbers shift by -1."""
    match = re.match(pattern, key)
    if match is None:
        return None
    groups = match.groups()
    if 'level_fcs' in replacement:
        groups = tuple(str(int(g) - 1) for g in groups)
    return replacement.format(*groups) + key[match.end():]


def _convert_head_key(key: str) -> Optional[str]:
    """Map one new-generation, non-backbone official key, or None."""
    for pattern, replacement in _TRANSFORMER_RULES:
        new = _apply_rule(pattern, replacement, key)
        if new is not None:
            return new
    match = re.match(r'bbox_head\.(things_mask_head|stuff_mask_head)\.', key)
    if match is None:
        return None
    prefix = f'bbox_head.{_MASK_HEADS[match.group(1)]}.'
    rest = key[match.end():]
    block = re.match(r'blocks\.(\d+)\.', rest)
    if block is not None:
        prefix += f'layers.{block.group(1)}.'
        rules, rest = _MASK_BLOCK_RULES, rest[block.end():]
    else:
        rules = _MASK_TAIL_RULES
    for pattern, replacement in rules:
        # a mask-decoder key is a Linear or LayerNorm weight or bias
        new = _apply_rule(pattern + r'(?=(?:weight|bias)$)', replacement,
                          rest)
        if new is not None:
            return prefix + new
    return None


def normalize_official_key(key: str) -> str:
    """Strip ``module.`` and rename old-generation keys to the new names."""
    if key.startswith('module.'):
        key = key[len('module.'):]
    for old, new in OLD_KEY_ALIASES:
        key = key.replace(old, new)
    return key


def convert_official_state_dict(
        state_dict: Dict[str, Tensor],
        backbone_converter: Optional[Callable[[Dict[str, Tensor]],
                                              Dict[str, Tensor]]] = None,
        return_dropped: bool = False
) -> Union[OrderedDict, Tuple[OrderedDict, List[str]]]:
    """Rename an official state dict to :class:`PanopticSegFormerCVPR22`.

    Args:
        state_dict (dict[str, Tensor]): The released ``state_dict``, either
            key generation, with or without ``module.``.
        backbone_converter (callable, optional): Maps the backbone's
            official keys (without ``backbone.``) to mmdet's, e.g. mmdet's
            ``pvt_convert`` or ``swin_converter``. None keeps ResNet keys.
        return_dropped (bool): Also return the dropped (dead) keys.

    Returns:
        OrderedDict: The converted state dict (and the dropped keys).

    Raises:
        KeyError: Listing every key that no rule recognises, or keys that
            two official names map to.
    """
    converted, dropped, unknown = OrderedDict(), [], []
    backbone = OrderedDict()
    for raw_key, value in state_dict.items():
        key = normalize_official_key(raw_key)
        if key.startswith(DEAD_PREFIXES):
            dropped.append(raw_key)
            continue
        if key.startswith('backbone.'):
            backbone[key[len('backbone.'):]] = value
            continue
        new = _convert_head_key(key)
        if new is None:
            unknown.append(raw_key)
        elif new in converted:
            unknown.append(f'{raw_key} (duplicate of {new})')
        else:
            converted[new] = value
    if unknown:
        raise KeyError(
            f'{len(unknown)} key(s) of the checkpoint are not part of a '
            f'released Panoptic SegFormer model: {unknown[:20]}'
            f'{" ..." if len(unknown) > 20 else ""}. Is it one of the five '
            'released files (or a plugin checkpoint, which needs no '
            'conversion)?')
    if backbone_converter is not None:
        backbone = backbone_converter(backbone)
    result = OrderedDict()
    for key, value in backbone.items():
        # mmdet's swin_converter already prefixes 'backbone.'
        if not key.startswith('backbone.'):
            key = f'backbone.{key}'
        result[key] = value
    result.update(converted)
    return (result, dropped) if return_dropped else result


def is_official_state_dict(state_dict: Dict[str, Tensor],
                           prefix: str = '') -> bool:
    """Whether keys under ``prefix`` use the authors' names (any version)."""
    markers = ('bbox_head.transformer.', 'bbox_head.query_embedding.',
               'bbox_head.things_mask_head.', 'bbox_head.mask_head.')
    for key in state_dict:
        if not key.startswith(prefix):
            continue
        key = normalize_official_key(key[len(prefix):])
        if key.startswith(markers):
            return True
    return False


def official_backbone_converter(backbone_type: str) -> Optional[Callable]:
    """mmdet's converter of the authors' backbone keys, by mmdet type.

    Args:
        backbone_type (str): ``'ResNet'``, ``'PyramidVisionTransformerV2'``
            or ``'SwinTransformer'``.

    Returns:
        callable | None: ``pvt_convert``, ``swin_converter`` or None (ResNet
        keys need no change).
    """
    if backbone_type == 'ResNet':
        return None
    if backbone_type == 'PyramidVisionTransformerV2':
        from mmdet.models.backbones.pvt import pvt_convert
        return pvt_convert
    if backbone_type == 'SwinTransformer':
        from mmdet.models.backbones.swin import swin_converter
        return swin_converter
    raise ValueError(f'no released Panoptic SegFormer model has a '
                     f'{backbone_type} backbone; expected ResNet, '
                     'PyramidVisionTransformerV2 or SwinTransformer')

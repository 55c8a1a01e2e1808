"""The check that a detector's ``test_cfg`` holds no post-processing
setting: Panoptic SegFormer reads them from its panoptic fusion head."""
from mmdet.utils import OptConfigType

# Post-processing keys of other heads' ``test_cfg`` (mmdet's MaskFormer /
# Mask2Former, DETR) and the fusion-head argument that sets the same thing.
TEST_CFG_ARGUMENTS = {
    'object_mask_thr': 'score_thr',
    'iou_thr': 'overlap_thr (= 1 - iou_thr)',
    'max_per_image': 'max_per_image',
    'max_per_img': 'max_per_image',
    'panoptic_on': 'panoptic_on',
    'instance_on': 'instance_on',
    'semantic_on': 'semantic_on',
    'score_thr': 'score_thr',
    'mask_thr': 'mask_thr',
    'filter_low_score': 'score_thr',
}


def refuse_test_cfg(test_cfg: OptConfigType) -> None:
    """Raise for a non-empty ``model.test_cfg``: Panoptic SegFormer reads
    its post-processing settings from ``model.panoptic_fusion_head``, and a
    threshold left in ``test_cfg`` (e.g. from a Mask2Former config) would
    otherwise be ignored without a word.

    Args:
        test_cfg (dict, optional): The detector's ``test_cfg``.
    """
    if not test_cfg:
        return
    hints = [
        f'{key} -> model.panoptic_fusion_head.'
        f'{TEST_CFG_ARGUMENTS.get(key, "(no such setting)")}'
        for key in test_cfg
    ]
    raise ValueError(
        f'model.test_cfg={dict(test_cfg)} is not read by Panoptic '
        f'SegFormer: set its post-processing in model.panoptic_fusion_head '
        f'instead ({"; ".join(hints)}) and leave test_cfg=dict()')

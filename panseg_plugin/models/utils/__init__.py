from .attention_maps import (attention_maps_to_masks, query_key_to_masks,
                             split_levels)
from .location_targets import masks_to_center_scale
from .mask_wise_merge import (mask_boxes, mask_wise_merge,
                              semantic_from_panoptic)
from .panoptic_segformer_cvpr22_checkpoint import (convert_official_state_dict,
                                                   is_official_state_dict)
from .panoptic_segformer_cvpr22_merge import (cvpr22_mask_scores,
                                              cvpr22_mask_wise_merge)
from .panoptic_targets import panoptic_targets, valid_cells
from .refuse_test_cfg import refuse_test_cfg

__all__ = [
    'attention_maps_to_masks', 'query_key_to_masks', 'split_levels',
    'masks_to_center_scale',
    'mask_boxes', 'mask_wise_merge', 'semantic_from_panoptic',
    'panoptic_targets', 'valid_cells', 'refuse_test_cfg',
    'convert_official_state_dict', 'is_official_state_dict',
    'cvpr22_mask_scores', 'cvpr22_mask_wise_merge'
]

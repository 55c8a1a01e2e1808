from .attention_maps import attention_maps_to_masks, split_levels
from .location_targets import masks_to_center_scale
from .mask_wise_merge import mask_wise_merge

__all__ = [
    'attention_maps_to_masks', 'split_levels', 'masks_to_center_scale',
    'mask_wise_merge'
]

import torch

from panseg_plugin.models.utils import masks_to_center_scale


def test_center_and_scale_of_hand_made_masks():
    masks = torch.zeros(3, 10, 20, dtype=torch.bool)
    masks[0, 0:4, 0:10] = True      # top-left block
    masks[1] = True                 # whole image
    out = masks_to_center_scale(masks, (10, 20))
    assert out.shape == (3, 3)
    torch.testing.assert_close(out[0], torch.tensor([5 / 20, 2 / 10, 0.2]))
    torch.testing.assert_close(out[1], torch.tensor([0.5, 0.5, 1.0]))
    # empty mask: defined, finite value
    torch.testing.assert_close(out[2], torch.tensor([0.5, 0.5, 0.0]))


def test_padding_is_excluded_from_the_normaliser():
    masks = torch.zeros(1, 16, 32)
    masks[0, :8, :16] = 1            # the whole valid image of 8 x 16
    out = masks_to_center_scale(masks, (8, 16))
    torch.testing.assert_close(out[0], torch.tensor([0.5, 0.5, 1.0]))


def test_no_masks():
    assert masks_to_center_scale(torch.zeros(0, 5, 5), (5, 5)).shape == (0, 3)

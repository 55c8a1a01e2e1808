import pytest
import torch
import torch.nn.functional as F

from panseg_plugin.models.utils import attention_maps_to_masks, split_levels


def _shapes(*hw):
    return torch.tensor(hw, dtype=torch.long)


def test_split_levels_shapes_and_order():
    shapes = _shapes((4, 6), (2, 3), (1, 2))
    attn = torch.arange(2 * 3 * 2 * 32, dtype=torch.float).view(2, 3, 2, 32)
    levels = split_levels(attn, shapes)
    assert [tuple(x.shape) for x in levels] == [(2, 3, 2, 4, 6),
                                                (2, 3, 2, 2, 3),
                                                (2, 3, 2, 1, 2)]
    # row-major flattening: token index = y * W + x within each level
    assert levels[1][0, 0, 0, 1, 2] == attn[0, 0, 0, 24 + 1 * 3 + 2]
    assert levels[2][1, 2, 1, 0, 1] == attn[1, 2, 1, 24 + 6 + 1]


def test_split_levels_rejects_wrong_length():
    with pytest.raises(ValueError, match='tokens'):
        split_levels(torch.zeros(1, 1, 2, 10), _shapes((2, 2), (1, 1)))


@pytest.mark.parametrize('shapes', [((8, 10), (4, 5), (2, 3)),
                                    ((5, 7),),
                                    ((6, 6), (3, 3), (2, 2), (1, 1))])
def test_attention_maps_to_masks_matches_naive_concat_conv(shapes):
    torch.manual_seed(0)
    shapes = _shapes(*shapes)
    num_heads, levels = 4, len(shapes)
    attn = torch.randn(2, 5, num_heads, int(shapes.prod(1).sum()))
    conv = torch.nn.Conv2d(num_heads * levels, 1, 1)
    out = attention_maps_to_masks(attn, shapes, conv.weight, conv.bias)

    # naive reference: Eq. 2 literally (upsample every head, concat, conv)
    h0, w0 = shapes[0].tolist()
    maps, start = [], 0
    for h, w in shapes.tolist():
        a = attn[..., start:start + h * w].reshape(10, num_heads, h, w)
        start += h * w
        maps.append(F.interpolate(a, size=(h0, w0), mode='bilinear',
                                  align_corners=False))
    ref = conv(torch.cat(maps, dim=1)).view(2, 5, h0, w0)
    assert out.shape == (2, 5, h0, w0)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_attention_maps_to_masks_checks_conv_channels():
    shapes = _shapes((2, 2), (1, 1))
    with pytest.raises(ValueError, match='heads'):
        attention_maps_to_masks(torch.zeros(1, 1, 2, 5), shapes,
                                torch.zeros(1, 3, 1, 1), None)

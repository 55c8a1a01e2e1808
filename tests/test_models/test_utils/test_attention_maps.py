import pytest
import torch
import torch.nn.functional as F

from panseg_plugin.models.utils import (attention_maps_to_masks,
                                        query_key_to_masks, split_levels)


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


@pytest.mark.parametrize('num_heads', [1, 2, 8])
@pytest.mark.parametrize('shapes', [((8, 10), (4, 5), (2, 3)),
                                    ((5, 7),),
                                    ((6, 6), (3, 3), (2, 2), (1, 1))])
def test_query_key_to_masks_equals_masks_of_the_logits(num_heads, shapes):
    """The masks of the projected queries and keys are those of the
    explicit logits, for any number of heads and levels, with gradients."""
    torch.manual_seed(0)
    shapes = _shapes(*shapes)
    channels, levels = 4 * num_heads, len(shapes)
    num_tokens = int(shapes.prod(1).sum())
    query = torch.randn(2, 5, channels, requires_grad=True)
    key = torch.randn(2, num_tokens, channels, requires_grad=True)
    conv = torch.nn.Conv2d(num_heads * levels, 1, 1)
    scale = 0.5
    qh = query.view(2, 5, num_heads, 4)
    kh = key.view(2, num_tokens, num_heads, 4)
    logits = torch.einsum('bnhc,blhc->bnhl', qh, kh) * scale
    ref = attention_maps_to_masks(logits, shapes, conv.weight, conv.bias)
    out = query_key_to_masks(query, key, shapes, conv.weight, conv.bias,
                             num_heads, scale)
    assert out.shape == ref.shape == (2, 5, *shapes[0].tolist())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    ref_grads = torch.autograd.grad(ref, (query, key), grad)
    grads = torch.autograd.grad(out, (query, key), grad)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_query_key_to_masks_checks_inputs():
    shapes = _shapes((2, 2), (1, 1))
    with pytest.raises(ValueError, match='tokens'):
        query_key_to_masks(torch.zeros(1, 1, 4), torch.zeros(1, 6, 4),
                           shapes, torch.zeros(1, 4, 1, 1), None, 2, 1.0)
    with pytest.raises(ValueError, match='heads'):
        query_key_to_masks(torch.zeros(1, 1, 4), torch.zeros(1, 5, 4),
                           shapes, torch.zeros(1, 3, 1, 1), None, 2, 1.0)

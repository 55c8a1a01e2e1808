import pytest
import torch

from panseg_plugin.models.layers import (AttentionMapCrossAttention,
                                         MaskDecoder, MaskDecoderLayer)


def test_cross_attention_matches_naive_einsum():
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(embed_dims=8, num_heads=2)
    q, m = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    qp, mp = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    out, logits = attn(q, m, query_pos=qp, memory_pos=mp)

    Q = attn.q_proj(q + qp).view(2, 3, 2, 4)
    K = attn.k_proj(m + mp).view(2, 5, 2, 4)
    V = attn.v_proj(m).view(2, 5, 2, 4)
    ref_logits = torch.einsum('bnhc,blhc->bnhl', Q, K) / 2.0
    weights = ref_logits.softmax(-1)
    ref_out = attn.out_proj(
        torch.einsum('bnhl,blhc->bnhc', weights, V).reshape(2, 3, 8))
    assert logits.shape == (2, 3, 2, 5)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(out, ref_out)


def test_cross_attention_ignores_padding_tokens():
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(embed_dims=8, num_heads=2).eval()
    q, m = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    out1, _ = attn(q, m, memory_mask=mask)
    m2 = m.clone()
    m2[:, 4:] = 100.0
    out2, _ = attn(q, m2, memory_mask=mask)
    torch.testing.assert_close(out1, out2)


def test_embed_dims_must_divide_heads():
    with pytest.raises(ValueError, match='divisible'):
        AttentionMapCrossAttention(embed_dims=10, num_heads=3)


@pytest.mark.parametrize('with_self_attn', [True, False])
def test_layer_is_permutation_equivariant_in_queries(with_self_attn):
    torch.manual_seed(0)
    layer = MaskDecoderLayer(16, 2, 32, dropout=0.0,
                             with_self_attn=with_self_attn).eval()
    q, qp = torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    m = torch.randn(1, 7, 16)
    perm = torch.tensor([3, 0, 4, 1, 2])
    out, logits = layer(q, m, query_pos=qp)
    out_p, logits_p = layer(q[:, perm], m, query_pos=qp[:, perm])
    torch.testing.assert_close(out[:, perm], out_p)
    torch.testing.assert_close(logits[:, perm], logits_p)
    assert len(layer.norms) == (3 if with_self_attn else 2)


def test_decoder_returns_every_layer():
    dec = MaskDecoder(num_layers=3, embed_dims=16, num_heads=4,
                      feedforward_channels=32)
    queries, maps = dec(torch.randn(2, 5, 16), torch.randn(2, 9, 16))
    assert len(queries) == len(maps) == 3
    assert all(q.shape == (2, 5, 16) for q in queries)
    assert all(a.shape == (2, 5, 4, 9) for a in maps)
    with pytest.raises(ValueError, match='channels'):
        dec(torch.randn(2, 5, 8), torch.randn(2, 9, 8))

import pytest
import torch

from panseg_plugin.models.layers import (AttentionMapCrossAttention,
                                         MaskDecoder, MaskDecoderLayer)


def test_cross_attention_matches_naive_einsum():
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(embed_dims=8, num_heads=2)
    q, m = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    qp, mp = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    out, terms = attn(q, m, query_pos=qp, memory_pos=mp, need_logits=True)
    logits = terms.logits

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
    torch.testing.assert_close(terms.query.view(2, 3, 2, 4), Q)
    torch.testing.assert_close(terms.key.view(2, 5, 2, 4), K)


@pytest.mark.parametrize('num_heads', [1, 2, 4])
@pytest.mark.parametrize('with_mask', [False, True])
def test_fused_attention_output_equals_explicit(num_heads, with_mask):
    """scaled_dot_product_attention gives the explicit path's output and
    holds no logits; with padding, with and without dropout in eval."""
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(8, num_heads, attn_drop=0.5).eval()
    q, m = torch.randn(2, 6, 8), torch.randn(2, 11, 8)
    mask = torch.zeros(2, 11, dtype=torch.bool)
    mask[1, 7:] = True
    mask = mask if with_mask else None
    out_ref, ref = attn(q, m, memory_mask=mask, need_logits=True)
    out, fused = attn(q, m, memory_mask=mask, need_logits=False)
    assert fused.logits is None
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.query, ref.query)
    torch.testing.assert_close(fused.key, ref.key)


def test_cross_attention_ignores_padding_tokens():
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(embed_dims=8, num_heads=2).eval()
    q, m = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    for need_logits in (True, False):
        out1, _ = attn(q, m, memory_mask=mask, need_logits=need_logits)
        m2 = m.clone()
        m2[:, 4:] = 100.0
        out2, _ = attn(q, m2, memory_mask=mask, need_logits=need_logits)
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
    out, terms = layer(q, m, query_pos=qp, need_logits=True)
    out_p, terms_p = layer(q[:, perm], m, query_pos=qp[:, perm],
                           need_logits=True)
    torch.testing.assert_close(out[:, perm], out_p)
    torch.testing.assert_close(terms.logits[:, perm], terms_p.logits)
    assert len(layer.norms) == (3 if with_self_attn else 2)


def test_decoder_returns_every_layer():
    dec = MaskDecoder(num_layers=3, embed_dims=16, num_heads=4,
                      feedforward_channels=32)
    queries, terms = dec(torch.randn(2, 5, 16), torch.randn(2, 9, 16),
                         need_logits=True)
    assert len(queries) == len(terms) == 3
    assert all(q.shape == (2, 5, 16) for q in queries)
    assert all(t.logits.shape == (2, 5, 4, 9) for t in terms)
    assert all(t.query.shape == (2, 5, 16) and t.key.shape == (2, 9, 16)
               for t in terms)
    _, fused = dec(torch.randn(2, 5, 16), torch.randn(2, 9, 16))
    assert all(t.logits is None for t in fused)
    with pytest.raises(ValueError, match='channels'):
        dec(torch.randn(2, 5, 8), torch.randn(2, 9, 8))


def test_chunked_dropout_attention_without_dropout_is_sdpa():
    from panseg_plugin.models.layers.attention_map_cross_attention import \
        chunked_dropout_attention
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4), \
        torch.randn(2, 3, 7, 4)
    valid = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    valid[1, ..., 5:] = False
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=valid, scale=0.3)
    out = chunked_dropout_attention(q, k, v, valid, 0.0, 0.3, chunk_size=3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_chunked_dropout_attention_recomputes_the_same_dropout():
    """With values = identity the output is the dropped weights W; the
    gradient of (out * g).sum() w.r.t. the values is then W^T g, which
    holds only if the backward recomputation dropped the same weights."""
    from panseg_plugin.models.layers.attention_map_cross_attention import \
        chunked_dropout_attention
    torch.manual_seed(0)
    num_tokens = 6
    q = torch.randn(1, 2, 9, num_tokens)
    k = torch.randn(1, 2, num_tokens, num_tokens)
    v = torch.eye(num_tokens).expand(1, 2, -1, -1).clone().requires_grad_()
    out = chunked_dropout_attention(q, k, v, None, 0.5, 1.0, chunk_size=4)
    assert (out == 0).any() and (out > 0).any()  # some weights dropped
    g = torch.randn_like(out)
    (grad_v, ) = torch.autograd.grad((out * g).sum(), v)
    torch.testing.assert_close(grad_v, out.detach().transpose(-2, -1) @ g)


def test_cross_attention_trains_with_dropout_on_cpu():
    torch.manual_seed(0)
    attn = AttentionMapCrossAttention(8, 2, attn_drop=0.1,
                                      dropout_chunk_size=2).train()
    q, m = torch.randn(2, 5, 8), torch.randn(2, 9, 8, requires_grad=True)
    out, terms = attn(q, m, need_logits=False)
    assert out.shape == (2, 5, 8) and terms.logits is None
    out.sum().backward()
    assert torch.isfinite(m.grad).all()

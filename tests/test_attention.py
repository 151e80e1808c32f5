"""LGNet self-attention: the fast (SDPA) form equals the direct (official-style) form and a naive loop."""

import pytest
import torch

from inpaintlab.layers.attention import (
    AttentionModule,
    SelfAttention,
    self_attention_direct,
    self_attention_fast,
)


def _naive_attention(f: torch.Tensor) -> torch.Tensor:
    """Textbook loop over positions, float64: s_ij = sum_{i' in 3x3(i)} <f_i', k_j>, out_i = sum_j a_ij k_j."""
    b, c, h, w = f.shape
    out = torch.zeros_like(f)
    for n in range(b):
        flat = f[n].reshape(c, h * w) + 1e-7
        keys = flat / flat.norm(dim=0, keepdim=True)  # (C, HW)
        for y in range(h):
            for x in range(w):
                query = torch.zeros(c, dtype=f.dtype)
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            query += f[n, :, y + dy, x + dx]
                weights = torch.softmax(query @ keys, dim=0)
                out[n, :, y, x] = keys @ weights
    return out


def test_direct_and_fast_match_naive_loop_float64():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)
    expected = _naive_attention(f)
    torch.testing.assert_close(self_attention_direct(f), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(self_attention_fast(f), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 16, 7, 9), (1, 32, 16, 16), (3, 8, 1, 5)])
def test_fast_equals_direct_fp32_values_and_gradients(shape):
    g = torch.Generator().manual_seed(1)
    # scale 3 makes the softmax sharp (logits up to ~100), like trained BN features
    f = (3 * torch.randn(*shape, generator=g)).requires_grad_()
    upstream = torch.randn(shape, generator=g)
    direct = self_attention_direct(f)
    (grad_direct,) = torch.autograd.grad(direct, f, upstream)
    fast = self_attention_fast(f)
    (grad_fast,) = torch.autograd.grad(fast, f, upstream)
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad_fast, grad_direct, rtol=0, atol=2e-5)
    # outputs are convex combinations of unit keys: norm <= 1
    assert direct.norm(dim=1).max() <= 1 + 1e-5


def test_border_queries_sum_only_inside_neighbours():
    """A query in the corner sees 4 neighbours, not 9: check one corner value against a hand computation."""
    f = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    f[0, 0] = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    f[0, 1] = 1.0
    keys = (f[0].reshape(2, 9) + 1e-7) / (f[0].reshape(2, 9) + 1e-7).norm(dim=0)
    corner_query = f[0, :, :2, :2].sum(dim=(1, 2))  # only 4 in-image neighbours of (0,0)
    expected = keys @ torch.softmax(corner_query @ keys, dim=0)
    torch.testing.assert_close(self_attention_fast(f)[0, :, 0, 0], expected)
    torch.testing.assert_close(self_attention_direct(f)[0, :, 0, 0], expected)


def test_attention_module_combines_attention_and_input():
    torch.manual_seed(0)
    module = AttentionModule(6, fast=True)
    assert sum(p.numel() for p in module.parameters()) == 12 * 6 + 6
    f = torch.randn(2, 6, 5, 5)
    expected = torch.nn.functional.conv2d(
        torch.cat([self_attention_direct(f), f], 1), module.combiner.weight, module.combiner.bias
    )
    torch.testing.assert_close(module(f), expected, rtol=0, atol=1e-5)
    module.attention.fast = False
    torch.testing.assert_close(module(f), expected, rtol=0, atol=1e-6)
    assert isinstance(module.attention, SelfAttention)


def test_fast_form_uses_the_fused_kernel_without_a_score_map():
    """The fused CPU kernel needs C-contiguous tokens; otherwise SDPA silently falls back to the math path,
    which materialises the HW x HW score map (bmm + softmax)."""
    f = torch.randn(1, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    for features in (f, f.contiguous()):
        with torch.profiler.profile() as prof, torch.inference_mode():
            self_attention_fast(features)
        ops = {e.key for e in prof.key_averages()}
        assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
        assert not ops & {"aten::bmm", "aten::softmax", "aten::_softmax"}

"""Self-attention of LGNet (RFR's knowledge-consistent attention without its recurrent part).

For a feature map ``f`` (B,C,H,W), every position ``j`` (hole and known alike, the query itself included)
is a key ``k_j = (f_j + 1e-7) / ||f_j + 1e-7||_2``; queries are not normalised. The score of query ``i`` and
key ``j`` is summed over the 3x3 neighbourhood of ``i`` (zero padding), softmax runs over the keys without
temperature, and the output is the attention-weighted sum of the unit keys:

    s_ij = sum_{i' in N3x3(i)} <f_i', k_j>,   out_i = sum_j softmax_j(s_ij) k_j.

This is the official code (``weizequan/LGNet`` ``models/attention.py``, RFR's ``Attention.py`` minus its
recurrent blending; implementation-notes 1.4), which produced the published numbers. The paper's Eq. 10
differs in three ways: it normalises the queries too (a cosine similarity), has no 3x3 propagation, and
returns the weighted average of the un-normalised features (``F * S``) rather than of the unit keys. The
official form is kept; it is parameter-free either way, so the parameter counts do not tell them apart.

Two implementations of the same maths sit behind ``SelfAttention``:

* ``direct``: the reference form (per sample: scores by ``conv2d`` with the keys as 1x1 kernels,
  ``avg_pool2d(3, 1, 1) * 9`` propagation over query positions, softmax, ``conv_transpose2d`` back).
  It materialises the (HW x HW) score map: 64 MiB per sample at 64x64 in fp32.
* ``fast``: the propagation is linear in the queries, so box-filter (3x3 sum) the features first and run
  ``F.scaled_dot_product_attention(box(f), k, k, scale=1)``, which never builds the score map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KEY_EPS = 1e-7  # added to every key component before L2 normalisation (as in RFR / LGNet)


def normalized_keys(features: Tensor) -> Tensor:
    """(B,C,H,W) features -> (B,C,H,W) unit-length keys ``(f + 1e-7) / ||f + 1e-7||`` over C."""
    shifted = features + KEY_EPS
    return shifted / torch.linalg.vector_norm(shifted, dim=1, keepdim=True)


def box_sum3x3(features: Tensor) -> Tensor:
    """(B,C,H,W) -> (B,C,H,W): sum over each 3x3 neighbourhood with zero padding."""
    return F.avg_pool2d(features, 3, stride=1, padding=1, count_include_pad=True) * 9


def self_attention_direct(features: Tensor) -> Tensor:
    """Reference form, one sample at a time. features (B,C,H,W) -> (B,C,H,W)."""
    b, c, h, w = features.shape
    keys = normalized_keys(features)
    outputs = []
    for i in range(b):
        kernels = keys[i].reshape(c, h * w).t().reshape(h * w, c, 1, 1)  # one 1x1 kernel per key position
        scores = F.conv2d(features[i : i + 1], kernels)  # (1, HW keys, H, W queries)
        scores = box_sum3x3(scores)  # propagate over query positions
        weights = torch.softmax(scores, dim=1)
        outputs.append(F.conv_transpose2d(weights, kernels))  # (1, C, H, W)
    return torch.cat(outputs, dim=0)


def self_attention_fast(features: Tensor) -> Tensor:
    """Same maths without the HW x HW map. features (B,C,H,W) -> (B,C,H,W)."""
    b, c, h, w = features.shape

    def tokens(x: Tensor) -> Tensor:  # (B,C,H,W) -> (B,1,HW,C), C contiguous (needed by the fused CPU kernel)
        return x.permute(0, 2, 3, 1).reshape(b, 1, h * w, c).contiguous()

    keys = tokens(normalized_keys(features))
    out = F.scaled_dot_product_attention(tokens(box_sum3x3(features)), keys, keys, scale=1.0)
    return out.reshape(b, h, w, c).permute(0, 3, 1, 2)  # (B,C,H,W), channels-last strides


class SelfAttention(nn.Module):
    """Parameter-free LGNet self-attention. (B,C,H,W) -> (B,C,H,W); ``fast`` picks the implementation."""

    def __init__(self, fast: bool = True):
        super().__init__()
        self.fast = fast

    def forward(self, features: Tensor) -> Tensor:
        if self.fast:
            return self_attention_fast(features)
        return self_attention_direct(features)

    def extra_repr(self) -> str:
        return f"fast={self.fast}"


class AttentionModule(nn.Module):
    """``Conv1x1(2C->C, bias)(cat([attention(f), f]))``: (B,C,H,W) -> (B,C,H,W)."""

    def __init__(self, channels: int, fast: bool = True):
        super().__init__()
        self.attention = SelfAttention(fast=fast)
        self.combiner = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, features: Tensor) -> Tensor:
        return self.combiner(torch.cat([self.attention(features), features], dim=1))


__all__ = [
    "AttentionModule",
    "SelfAttention",
    "box_sum3x3",
    "normalized_keys",
    "self_attention_direct",
    "self_attention_fast",
]

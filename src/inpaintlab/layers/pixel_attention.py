"""MSA-Net pixelwise contextual attention (Eqs. 6-8) and its SE fusion block (Eqs. 9-12).

Following the official code (``wangning-001/MANet``, ``ContextualAttention.py``) where the paper is loose:

* Keys/values are the known ("background") feature vectors: ``b = f * valid``, ``k = (b + 1e-7) /
  ||b + 1e-7||`` (``normalized_keys``, shared with LGNet's ``layers/attention.py``). Hole positions
  stay in the softmax as the constant key ``1/sqrt(C)``: the official code does not exclude them.
* Queries are **not** normalised (Eq. 6 normalises both): ``normalize_queries=False``.
* Temperature ``lambda`` of Eq. 7 is 1 (``softmax_scale=1.0``).
* Propagation (Eq. 8) is a 3x3 box sum of the scores over *query* positions (zero padded) before the
  softmax, as in the code (``propagate_size=3``; 1 switches it off); Eq. 8 as printed is a post-softmax
  shift with a typo-like index and no value of k. This is LGNet's propagation too. Because the
  score is linear in the query, the box sum equals scoring the box-summed query ``sum_{i' in N(i)} f_i'``,
  which lets the fast path run as one ``scaled_dot_product_attention`` call without the HW x HW matrix.
* The reconstruction is ``sum_j a_ij k_j`` (normalised keys), and only hole positions are replaced.

Mask convention: ``hole`` (B,1,H0,W0) with 1 = hole at any resolution; it is resized to the feature size
by nearest neighbour (``F.interpolate`` default, as the official code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError
from .attention import KEY_EPS, box_sum3x3, normalized_keys


class PixelwiseAttention(nn.Module):
    """Parameter-free pixelwise contextual attention of MSA-Net.

    forward(features (B,C,H,W), hole (B,1,H0,W0) 1 = hole) -> (B,C,H,W): hole positions replaced by the
    attention reconstruction, known positions unchanged. ``probabilities`` gives the attention matrix.
    """

    def __init__(
        self,
        propagate_size: int = 3,
        softmax_scale: float = 1.0,
        normalize_queries: bool = False,
    ):
        super().__init__()
        if propagate_size not in (1, 3):
            raise InpaintlabError(f"propagate_size must be 3 (official) or 1 (no propagation), got {propagate_size}")
        self.propagate_size = propagate_size
        self.softmax_scale = softmax_scale
        self.normalize_queries = normalize_queries

    def _prepare(self, features: Tensor, hole: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(propagated queries (B,HW,C), unit keys (B,HW,C), hole at feature size (B,1,H,W))."""
        hole = F.interpolate(hole.to(features.dtype), size=features.shape[2:], mode="nearest")
        keys = normalized_keys(features * (1 - hole))
        queries = features
        if self.normalize_queries:
            queries = features / features.norm(dim=1, keepdim=True).clamp_min(KEY_EPS)
        if self.propagate_size == 3:
            queries = box_sum3x3(queries)
        # contiguous (B,HW,C): CPU SDPA takes its flash kernel only when the last dim has stride 1
        return queries.flatten(2).transpose(1, 2).contiguous(), keys.flatten(2).transpose(1, 2).contiguous(), hole

    def probabilities(self, features: Tensor, hole: Tensor) -> Tensor:
        """Attention of every query on every key: (B, HW_query, HW_key), rows sum to 1 (row-major HW)."""
        queries, keys, _ = self._prepare(features, hole)
        return torch.softmax(self.softmax_scale * queries @ keys.transpose(1, 2), dim=-1)

    def forward(self, features: Tensor, hole: Tensor) -> Tensor:
        queries, keys, hole = self._prepare(features, hole)
        recon = F.scaled_dot_product_attention(
            queries.unsqueeze(1), keys.unsqueeze(1), keys.unsqueeze(1), scale=self.softmax_scale
        ).squeeze(1)
        recon = recon.transpose(1, 2).reshape(features.shape)
        return recon * hole + features * (1 - hole)


class SqueezeExcitation(nn.Module):
    """SE channel reweighting (Eqs. 9-11): (B,C,H,W) -> (B,C,H,W).

    Hidden width ``int(C * squeeze_ratio)``; MSA-Net uses ``squeeze_ratio=1.0`` (no reduction).
    """

    def __init__(self, channels: int, squeeze_ratio: float = 1.0):
        super().__init__()
        hidden = max(1, int(channels * squeeze_ratio))
        self.excite = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        weights = self.excite(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class PixelAttentionBlock(nn.Module):
    """MSA-Net attention stage (Eq. 12): ``conv1x1(SE(cat[f, attention(f)]))``.

    forward(features (B,C,H,W), hole (B,1,H0,W0) 1 = hole) -> (B,C,H,W). Parameters: SE on 2C channels
    (two 2C x 2C linears) + a 1x1 conv 2C -> C with bias, as the official ``PixelContextualAttention``.
    """

    def __init__(self, channels: int, squeeze_ratio: float = 1.0, **attention_kwargs):
        super().__init__()
        self.attention = PixelwiseAttention(**attention_kwargs)
        self.se = SqueezeExcitation(2 * channels, squeeze_ratio)
        self.combiner = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, features: Tensor, hole: Tensor) -> Tensor:
        merged = torch.cat([features, self.attention(features, hole)], dim=1)
        return self.combiner(self.se(merged))


__all__ = ["PixelAttentionBlock", "PixelwiseAttention", "SqueezeExcitation"]

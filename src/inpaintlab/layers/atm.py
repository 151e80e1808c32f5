"""Attention transfer (ATM / PEN-Net ATN): affinity learned on a deep map fills the 2x larger shallow map.

SRPNet Sec. 3.2 (Eqs. 2-4) on top of PEN-Net's ``AtnConv`` (implementation notes 3.2), whose code fills in
what the paper leaves open:

* Matching on the deep map (H x W): every ``ksize x ksize`` patch (zero padding ``ksize // 2``) is a key,
  L2-normalised with ``max(norm, 1e-4)``; queries are the same patches, not normalised.
* A key is valid iff its patch of the hole mask, resized to H x W by bilinear interpolation with
  ``align_corners=True``, has mean 0. Hole keys get logit 0 before the softmax (scale 10) and weight 0
  after it, without renormalisation, then weights are clamped at 1e-8 (PEN-Net, reproduced exactly).
* ``match`` chooses between the two: "pennet" (default, the rules above: the code SRPNet builds on and
  whose numbers it compares with) or "cosine" (Eqs. 2-3 as written: queries normalised too, so a query's
  norm no longer sharpens or flattens its softmax row, and a softmax over the valid keys only, which sum
  to 1). The paper's equations and PEN-Net's code disagree here and SRPNet's code is not public.
* Transfer (Eq. 4): the key's 4x4 patch of the shallow map (stride 2, zero padding 1) is pasted at the
  query's place, overlapping patches summed and divided by 4 (``conv_transpose2d(att, raw, 2, 1) / 4``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError

PATCH_NORM_FLOOR = 1e-4  # PEN-Net's ``escape_NaN`` for the key norms
WEIGHT_FLOOR = 1e-8  # PEN-Net clamps the attention weights at this value
FUSE_DILATIONS = (1, 2, 4, 8)  # PEN-Net's four parallel dilated 3x3 convolutions
HOLE_KEY_PENALTY = 1e4  # subtracted from hole keys' logits in "cosine" matching (finite, unlike -inf)
MATCH_RULES = ("pennet", "cosine")


def valid_key_patches(mask: Tensor, size: tuple[int, int], ksize: int) -> Tensor:
    """(B,1,H0,W0) hole mask (1 = hole) -> (B,H*W,1) float, 1 where a deep-map key patch has no hole.

    PEN-Net rule: bilinear resize (align_corners=True) to ``size`` then "patch mean == 0".
    """
    small = F.interpolate(mask, size=size, mode="bilinear", align_corners=True)
    patches = F.unfold(small, ksize, padding=ksize // 2)  # (B, k*k, H*W)
    return patches.mean(dim=1).eq(0).to(mask.dtype).unsqueeze(-1)


def attention_scores(
    deep: Tensor, key_valid: Tensor, ksize: int = 3, softmax_scale: float = 10.0, match: str = "pennet"
) -> Tensor:
    """Eqs. 2-3: (B,C,H,W) deep map, (B,H*W,1) key validity -> (B, H*W keys, H*W queries) weights.

    Column q holds the attention of query patch q over all key patches; ``match`` as in the module docstring
    ("pennet": PEN-Net's masked softmax; "cosine": Eqs. 2-3 as written, all-zero where no key is valid).
    """
    patches = F.unfold(deep, ksize, padding=ksize // 2)  # (B, C*k*k, L), L = H*W
    keys = patches / patches.norm(dim=1, keepdim=True).clamp_min(PATCH_NORM_FLOOR)
    if match == "cosine":
        queries = patches / patches.norm(dim=1, keepdim=True).clamp_min(PATCH_NORM_FLOOR)
        logits = (keys.transpose(1, 2) @ queries) * softmax_scale  # (B, L keys, L queries), |logit| <= scale
        logits = logits - HOLE_KEY_PENALTY * (1 - key_valid)  # exp underflows to 0: a softmax over valid keys
        return torch.softmax(logits, dim=1) * key_valid
    scores = keys.transpose(1, 2) @ patches  # (B, L keys, L queries)
    scores = scores * key_valid
    weights = torch.softmax(scores * softmax_scale, dim=1) * key_valid
    return weights.clamp_min(WEIGHT_FLOOR)


def transfer(shallow: Tensor, weights: Tensor) -> Tensor:
    """Eq. 4: (B,C,2H,2W) shallow map, (B,H*W,H*W) weights -> (B,C,2H,2W) attention-weighted context."""
    size = shallow.shape[-2:]
    raw = F.unfold(shallow, 4, padding=1, stride=2)  # (B, C*16, H*W): one 4x4 patch per deep position
    return F.fold(raw @ weights, size, 4, padding=1, stride=2) / 4


class AttentionTransfer(nn.Module):
    """One ATM: ``forward(shallow (B,C,2H,2W), deep (B,C',H,W), mask (B,1,H0,W0)) -> (B,C,2H,2W)``.

    fill: "hole" (SRPNet Eq. 4 text: only the hole of the shallow map is replaced; a shallow cell is hole if
    any mask pixel in it is, i.e. adaptive max pooling) or "all" (PEN-Net code: the transferred map
    replaces the whole shallow map).
    out_layer: "conv1x1" (SRPNet Table A1 ``ATMConv``: 1x1 conv C->C, no activation), "dilated_fuse"
    (PEN-Net: four ``Conv3x3(C, C/4, dilation r) + ReLU`` for r = 1, 2, 4, 8, concatenated) or "none".
    match: "pennet" or "cosine" (module docstring).
    """

    def __init__(
        self,
        channels: int,
        ksize: int = 3,
        softmax_scale: float = 10.0,
        fill: str = "hole",
        out_layer: str = "conv1x1",
        match: str = "pennet",
    ):
        super().__init__()
        if fill not in ("hole", "all"):
            raise InpaintlabError(f"ATM fill must be 'hole' or 'all', got {fill!r}")
        if match not in MATCH_RULES:
            raise InpaintlabError(f"ATM match must be 'pennet' (PEN-Net code) or 'cosine' (Eqs. 2-3), got {match!r}")
        if ksize < 1 or ksize % 2 == 0:
            raise InpaintlabError(f"ATM ksize must be a positive odd number, got {ksize}")
        self.ksize, self.softmax_scale, self.fill, self.match = ksize, softmax_scale, fill, match
        if out_layer == "conv1x1":
            self.out = nn.Conv2d(channels, channels, 1)
        elif out_layer == "dilated_fuse":
            if channels % len(FUSE_DILATIONS):
                raise InpaintlabError(f"dilated_fuse needs channels divisible by 4, got {channels}")
            self.out = DilatedFuse(channels)
        elif out_layer == "none":
            self.out = nn.Identity()
        else:
            raise InpaintlabError(f"ATM out_layer must be 'conv1x1', 'dilated_fuse' or 'none', got {out_layer!r}")

    def forward(self, shallow: Tensor, deep: Tensor, mask: Tensor) -> Tensor:
        h, w = deep.shape[-2:]
        if shallow.shape[-2:] != (2 * h, 2 * w):
            raise ValueError(f"shallow map must be twice the deep map: {tuple(shallow.shape)}, {tuple(deep.shape)}")
        key_valid = valid_key_patches(mask, (h, w), self.ksize)
        weights = attention_scores(deep, key_valid, self.ksize, self.softmax_scale, self.match)
        filled = transfer(shallow, weights)
        if self.fill == "hole":
            hole = F.adaptive_max_pool2d(mask, shallow.shape[-2:])
            filled = shallow * (1 - hole) + filled * hole
        return self.out(filled)


class DilatedFuse(nn.Module):
    """PEN-Net's post-attention fuse: (B,C,H,W) -> (B,C,H,W) from four dilated 3x3 branches of C/4 each."""

    def __init__(self, channels: int):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels // 4, 3, padding=r, dilation=r), nn.ReLU()) for r in FUSE_DILATIONS
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


__all__ = ["AttentionTransfer", "DilatedFuse", "attention_scores", "transfer", "valid_key_patches"]

"""CSTFNet's structure-/texture-aware feature inpainting (STI, Sec. 3.2.2, Fig. 4, Eqs. 10-12) and fusion (STF).

STI works on two adjacent pyramid levels, ``shallow`` (B,Cs,2h,2w) and ``deep`` (B,Cd,h,w). Both maps are
cut into the same h x w grid of patches ("an equal number of patches"): the deep map into ``ksize x ksize``
patches at stride 1 (zero padding ``ksize // 2``), the shallow map into 4x4 patches at stride 2 (padding 1),
the pairing of a deep patch with the shallow patch beneath it used by DeepFill's contextual attention and
PEN-Net's ATN (paper ref. [6]; implementation notes 3.2-3.3). Patch n of one map sits where patch n of the
other does, so affinities computed on one map can rebuild the other:

* structure-aware repair of the shallow map: scores on the deep map, shallow patches rebuilt;
* texture-aware repair of the deep map: scores on the shallow map, deep patches rebuilt.

Scores (Eqs. 10-11): cosine similarity of every query patch with every *background* key patch of the guide
map, softmax over the background keys only. Reconstruction (Eq. 12): every target patch becomes the
score-weighted sum of the target's patches at the key positions; overlapping patches are averaged (sum of
pasted patches / number of patches covering a cell) and only the target's hole cells are replaced. All of
it is unfold / attention / fold, i.e. convolutions, end to end differentiable.

Hole cells of a level ("the mask scaled down to the feature map"): a cell is hole iff any input pixel it
covers is hole (2x2 max pooling per level, so no partly-missing cell is trusted). A key is background iff its
patch holds no hole cell (zero padding counts as background).

Choices (keyword arguments of ``StructureTextureInpainting``):
* ``softmax_scale`` = 10: Eq. 11 prints a plain softmax of cosines; with cosines in [-1, 1] that gives
  nearly uniform weights over thousands of keys (best/worst ratio e^2). The paper formulates the module as
  DeepFill's convolutions [6], whose softmax scale is 10 (PEN-Net's too). ``softmax_scale=1`` is Eq. 11 as
  printed.
* A sample whose guide map has no background key (the hole covers every patch at a deep level) uses all
  of its keys instead of none, so the softmax stays defined (its holes are rebuilt from the map itself).
* Norm floor 1e-4 for the cosine (DeepFill/PEN-Net's ``escape_NaN``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cbam import CBAM

NORM_FLOOR = 1e-4


class PatchGrid(NamedTuple):
    """How a map is cut into patches: ``ksize x ksize`` windows at ``stride`` with zero ``padding``."""

    ksize: int
    stride: int
    padding: int


SHALLOW_GRID = PatchGrid(4, 2, 1)  # a 2h x 2w map -> h x w patches of 4x4


def deep_grid(ksize: int) -> PatchGrid:
    """Stride-1 grid of odd ``ksize`` patches: an h x w map -> h x w patches."""
    return PatchGrid(ksize, 1, ksize // 2)


def pyramid_masks(mask: Tensor, levels: int) -> list[Tensor]:
    """(B,1,H,W) hole mask -> masks at 1/2, 1/4, ..., 1/2**levels: a cell is hole iff any pixel it covers is."""
    masks = []
    for _ in range(levels):
        mask = F.max_pool2d(mask, 2)
        masks.append(mask)
    return masks


def extract_patches(x: Tensor, grid: PatchGrid) -> Tensor:
    """(B,C,H,W) -> (B,L,C*k*k): one row per patch, row-major over the patch grid."""
    return F.unfold(x, grid.ksize, padding=grid.padding, stride=grid.stride).transpose(1, 2)


def background_keys(mask_at_level: Tensor, grid: PatchGrid) -> Tensor:
    """(B,1,h,w) level mask -> (B,L) bool, True for key patches without a hole cell.

    A sample without any such patch gets all keys (see the module docstring).
    """
    valid = extract_patches(mask_at_level, grid).amax(dim=-1) == 0
    return valid | ~valid.any(dim=1, keepdim=True)


def patch_attention(
    guide: Tensor,
    guide_grid: PatchGrid,
    guide_mask: Tensor,
    target: Tensor,
    target_grid: PatchGrid,
    softmax_scale: float = 10.0,
) -> Tensor:
    """Eqs. 10-12: rebuild every patch of ``target`` from affinities measured on ``guide``.

    guide (B,Cg,Hg,Wg) with its level mask guide_mask (B,1,Hg,Wg); target (B,Ct,Ht,Wt). Both grids must give
    the same number of patches L (sides differing by exactly 2x). Returns (B,Ct,Ht,Wt): overlapping rebuilt patches averaged (no hole
    composition here).
    """
    guide_patches = extract_patches(guide, guide_grid)  # (B, L, Dg)
    target_patches = extract_patches(target, target_grid)  # (B, L, Dt)
    unit = guide_patches / guide_patches.norm(dim=-1, keepdim=True).clamp_min(NORM_FLOOR)
    keys_ok = background_keys(guide_mask, guide_grid)[:, None, None, :]  # (B,1,1,L) over keys
    rebuilt = F.scaled_dot_product_attention(
        unit[:, None], unit[:, None], target_patches[:, None], attn_mask=keys_ok, scale=softmax_scale
    )[:, 0]  # (B, L queries, Dt)
    size = target.shape[-2:]
    summed = F.fold(rebuilt.transpose(1, 2), size, target_grid.ksize, padding=target_grid.padding, stride=target_grid.stride)
    ones = torch.ones_like(target[:1, :1])
    count = F.fold(
        F.unfold(ones, target_grid.ksize, padding=target_grid.padding, stride=target_grid.stride),
        size,
        target_grid.ksize,
        padding=target_grid.padding,
        stride=target_grid.stride,
    )
    return summed / count


class StructureTextureInpainting(nn.Module):
    """Parameter-free STI for one pair of adjacent levels (see the module docstring).

    ``structure(shallow, deep, shallow_mask, deep_mask)`` -> repaired shallow (B,Cs,2h,2w), scores from deep;
    ``texture(shallow, deep, shallow_mask, deep_mask)`` -> repaired deep (B,Cd,h,w), scores from shallow.
    Masks: the level masks (B,1,2h,2w) and (B,1,h,w), 1 = hole (``pyramid_masks``). Only hole cells of the
    target change.
    """

    def __init__(self, ksize: int = 3, softmax_scale: float = 10.0):
        super().__init__()
        if ksize < 1 or ksize % 2 == 0:
            raise ValueError(f"STI ksize must be a positive odd number, got {ksize}")
        self.deep_grid = deep_grid(ksize)
        self.softmax_scale = softmax_scale

    def structure(self, shallow: Tensor, deep: Tensor, shallow_mask: Tensor, deep_mask: Tensor) -> Tensor:
        filled = patch_attention(deep, self.deep_grid, deep_mask, shallow, SHALLOW_GRID, self.softmax_scale)
        return shallow * (1 - shallow_mask) + filled * shallow_mask

    def texture(self, shallow: Tensor, deep: Tensor, shallow_mask: Tensor, deep_mask: Tensor) -> Tensor:
        filled = patch_attention(shallow, SHALLOW_GRID, shallow_mask, deep, self.deep_grid, self.softmax_scale)
        return deep * (1 - deep_mask) + filled * deep_mask

    def extra_repr(self) -> str:
        return f"ksize={self.deep_grid.ksize}, softmax_scale={self.softmax_scale}"


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """Conv3x3 with bias and padding 1: (B,cin,H,W) -> (B,cout,H,W)."""
    return nn.Conv2d(cin, cout, 3, padding=1)


class StructureTextureFusion(nn.Module):
    """STF (Fig. 5, Eqs. 13-14): (F_t, F_s) each (B,C,H,W) -> F_u (B,C,H,W).

    ``F_p = CBAM(Conv3x3(cat[F_t, F_s]))``;
    ``F_u = Conv1x1(cat[F_t * g(Conv3x3(cat[F_t, F_p])), F_s * g(Conv3x3(cat[F_s, F_p]))])``.
    gate: "none" (Eq. 14 as printed, g = identity) or "sigmoid" (g = sigmoid, a bounded gate).
    """

    def __init__(self, channels: int, gate: str = "none", cbam_reduction: int = 16):
        super().__init__()
        if gate not in ("none", "sigmoid"):
            raise ValueError(f"STF gate must be 'none' or 'sigmoid', got {gate!r}")
        self.merge = conv3x3(2 * channels, channels)
        self.cbam = CBAM(channels, cbam_reduction)
        self.texture_gate = conv3x3(2 * channels, channels)
        self.structure_gate = conv3x3(2 * channels, channels)
        self.out = nn.Conv2d(2 * channels, channels, 1)
        self.gate = gate

    def forward(self, texture: Tensor, structure: Tensor) -> Tensor:
        preliminary = self.cbam(self.merge(torch.cat([texture, structure], dim=1)))
        g_t = self.texture_gate(torch.cat([texture, preliminary], dim=1))
        g_s = self.structure_gate(torch.cat([structure, preliminary], dim=1))
        if self.gate == "sigmoid":
            g_t, g_s = torch.sigmoid(g_t), torch.sigmoid(g_s)
        return self.out(torch.cat([texture * g_t, structure * g_s], dim=1))


class ConcatFusion(nn.Module):
    """Table 4 "wo/Fusion": ``Conv3x3(cat[F_t, F_s])``, (B,C,H,W) x 2 -> (B,C,H,W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(2 * channels, channels)

    def forward(self, texture: Tensor, structure: Tensor) -> Tensor:
        return self.conv(torch.cat([texture, structure], dim=1))


__all__ = [
    "ConcatFusion",
    "PatchGrid",
    "StructureTextureFusion",
    "StructureTextureInpainting",
    "background_keys",
    "deep_grid",
    "extract_patches",
    "patch_attention",
    "pyramid_masks",
]

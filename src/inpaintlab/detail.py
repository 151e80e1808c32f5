"""Full-resolution detail for a fill made at low resolution (the pipeline's ``detail`` strategy).

A network fills a photo region at its working size (e.g. 256 px); upsampled onto the photo, that fill has
none of the photo's fine texture. ``add_detail`` gives it back in the way of contextual residual
aggregation (Yi et al., CVPR 2020) and guided patch synthesis (Wexler et al. 2007; Barnes et al. 2009):

1. ``base`` = the photo with the upsampled fill in the hole; its high-frequency residual
   ``R = base - up(down(base))`` at the network's scale is what an upsampled fill lacks.
2. On a coarse grid of cells (``cell`` px, at most ``grid`` cells on the long side) each hole cell is
   described by the 3x3 cells around it in the low-resolution fill (structure from the network) plus its
   position, and picks a source among the fully known cells nearest in that description (one of the
   ``top_k`` nearest, drawn with ``seed``, so flat regions do not repeat one block).
3. The residual of each source's 2x2-cell window (periodic Hann weights, which sum to one at 50 %
   overlap) is copied onto the hole cell's window, times ``strength``, and added to the upsampled fill.

Work and memory grow with the region given, not the photo: the pipeline passes the hole's box plus context.

>>> rng = np.random.default_rng(0)
>>> photo = (0.5 + 0.2 * rng.standard_normal((256, 256, 3))).clip(0, 1).astype(np.float32)
>>> hole = np.zeros((256, 256), bool); hole[96:160, 96:160] = True
>>> coarse = np.full((64, 64, 3), 0.5, np.float32)
>>> out = add_detail(photo, hole, coarse, seed=0)
>>> bool(out[hole].std() > 0.1), bool((out[~hole] == photo[~hole]).all())
(True, True)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .budget import check_budget

DETAIL_GRID = 128  # long side of the matching grid, in cells
DETAIL_TOP_K = 4
COHERENCE_SLACK = 1.3  # a neighbour's shifted source is taken when within 1.3x (+0.01) of the own distance
POSITION_WEIGHT = 0.5  # weight of the cell distance (in grid diagonals) against colour distance (in [0,1] units)


def add_detail(
    picture: np.ndarray,
    hole: np.ndarray,
    coarse: np.ndarray,
    strength: float = 1.0,
    seed: int = 0,
    grid: int = DETAIL_GRID,
    top_k: int = DETAIL_TOP_K,
) -> np.ndarray:
    """The fill of ``hole`` with full-resolution detail (see the module docstring).

    picture (H,W,3) float32 in [0,1] (hole pixels are ignored); hole (H,W) bool, True = hole; coarse
    (h,w,3) float32 in [0,1]: the low-resolution composite of the same region (h <= H, w <= W).
    Returns (H,W,3) float32 in [0,1]: ``picture`` outside the hole, upsampled fill + detail inside.
    """
    height, width = hole.shape
    pic = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None]
    holes = torch.from_numpy(hole)[None, None].float()
    low = torch.from_numpy(np.ascontiguousarray(coarse)).permute(2, 0, 1)[None]
    up = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    base = pic * (1 - holes) + up * holes
    blurred = F.interpolate(F.interpolate(base, size=low.shape[-2:], mode="area"), size=(height, width), mode="bilinear")
    residual = (base - blurred)[0]
    scale = max(height / low.shape[-2], width / low.shape[-1])
    cell = max(2, math.ceil(scale), math.ceil(max(height, width) / grid))
    copied = _copy_residual(residual, holes[0, 0] > 0, base, cell, seed, top_k)
    out = (up + strength * copied[None]).clamp(0, 1)
    out = pic * (1 - holes) + out * holes
    return out[0].permute(1, 2, 0).numpy()


def _copy_residual(residual: Tensor, hole: Tensor, base: Tensor, cell: int, seed: int, top_k: int) -> Tensor:
    """(3,H,W) residual copied onto the hole cells' windows from the chosen known cells; 0 elsewhere."""
    height, width = hole.shape
    gh, gw = math.ceil(height / cell), math.ceil(width / cell)
    pad_h, pad_w = gh * cell - height, gw * cell - width
    # cell (i, j)'s window: rows (i - 1/2) cell .. (i + 3/2) cell of the picture, i.e. of the padded one below
    half = cell // 2
    padded = F.pad(residual[None], (half, cell - half + pad_w, half, cell - half + pad_h), mode="reflect")[0]
    touched = F.adaptive_max_pool2d(F.pad(hole[None, None].float(), (0, pad_w, 0, pad_h)), (gh, gw))[0, 0] > 0
    unsafe = F.max_pool2d(touched[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0  # windows reaching the hole
    targets, sources = touched.flatten().nonzero()[:, 0], (~unsafe).flatten().nonzero()[:, 0]
    if len(targets) == 0 or len(sources) == 0:
        return torch.zeros_like(residual)
    choice = _match(base, (gh, gw), targets, sources, top_k, seed)
    window = torch.hann_window(2 * cell, periodic=True)
    weight = window[:, None] * window[None, :]
    views = padded.unfold(1, 2 * cell, cell).unfold(2, 2 * cell, cell)  # (3, gh, gw, 2c, 2c), a view
    blocks = views[:, choice // gw, choice % gw] * weight  # (3, n, 2c, 2c): only the copied windows
    out = torch.zeros(3, (gh + 1) * cell, (gw + 1) * cell)
    norm = torch.zeros((gh + 1) * cell, (gw + 1) * cell)
    ty, tx = (targets // gw).tolist(), (targets % gw).tolist()
    for n, (i, j) in enumerate(zip(ty, tx)):
        if n % 4096 == 0:
            check_budget()
        out[:, i * cell : i * cell + 2 * cell, j * cell : j * cell + 2 * cell] += blocks[:, n]
        norm[i * cell : i * cell + 2 * cell, j * cell : j * cell + 2 * cell] += weight
    out = out / norm.clamp_min(1e-6)
    return out[:, half : half + height, half : half + width]


def _match(base: Tensor, grid: tuple[int, int], targets: Tensor, sources: Tensor, top_k: int, seed: int) -> Tensor:
    """For each target cell, one of the ``top_k`` source cells nearest in 3x3-cell colour + position; (n,) ids."""
    gh, gw = grid
    cells = F.adaptive_avg_pool2d(base, grid)
    features = F.unfold(F.pad(cells, (1, 1, 1, 1), mode="replicate"), 3)[0].T / 3.0  # (gh*gw, 27)
    ids = torch.arange(gh * gw)
    position = torch.stack([ids // gw, ids % gw], 1).float() * (POSITION_WEIGHT / math.hypot(gh, gw))
    described = torch.cat([features, position], 1)
    source_features = described[sources]
    generator = torch.Generator().manual_seed(seed)
    k = min(top_k, len(sources))
    picks = []
    for chunk in targets.split(2048):
        check_budget()
        distance = torch.cdist(described[chunk], source_features)
        nearest = distance.topk(k, dim=1, largest=False).indices
        pick = torch.randint(k, (len(chunk),), generator=generator)
        picks.append(nearest[torch.arange(len(chunk)), pick])
    choice = sources[torch.cat(picks)]
    return _propagate(described, grid, targets, sources, choice)


def _propagate(described: Tensor, grid: tuple[int, int], targets: Tensor, sources: Tensor, choice: Tensor) -> Tensor:
    """PatchMatch's propagation (Barnes et al. 2009) on the cell grid: a target takes its neighbour's source
    shifted by one cell when that source is valid and nearly as close (``COHERENCE_SLACK``), so neighbouring
    targets copy neighbouring windows and the copied texture runs on without seams. One forward (left, up)
    and one backward (right, down) raster pass; (n,) source ids."""
    gh, gw = grid
    feats = described.numpy()
    valid = np.zeros(gh * gw, bool)
    valid[sources.numpy()] = True
    source_of = np.full(gh * gw, -1)
    order = targets.numpy()
    source_of[order] = choice.numpy()
    own = np.linalg.norm(feats[order] - feats[source_of[order]], axis=1)
    cost = dict(zip(order.tolist(), own.tolist()))
    for sweep, steps in ((order, (-1, -gw)), (order[::-1], (1, gw))):
        for n, t in enumerate(sweep.tolist()):
            if n % 4096 == 0:
                check_budget()
            for step in steps:
                near = t + step
                if step in (-1, 1) and near // gw != t // gw or not 0 <= near < gh * gw or source_of[near] < 0:
                    continue
                candidate = source_of[near] - step
                rows_apart = 0 if step in (-1, 1) else -step // gw  # the candidate's row offset from the neighbour's
                if not 0 <= candidate < gh * gw or not valid[candidate] or candidate // gw != source_of[near] // gw + rows_apart:
                    continue
                d = float(np.linalg.norm(feats[t] - feats[candidate]))
                if d <= cost[t] * COHERENCE_SLACK + 0.01:
                    source_of[t], cost[t] = candidate, d
    return torch.from_numpy(source_of[order])


__all__ = ["add_detail"]

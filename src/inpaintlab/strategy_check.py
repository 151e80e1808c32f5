"""Object removal at a photo's own size: measure each pipeline strategy against Telea.

``compare_strategies(pipes, pictures)`` fills every picture with object-shaped holes (``masks.object_mask``)
of the given ratios through each named pipeline (a model with a strategy, or a classical method) and
reports, per pipeline, the mean absolute error inside the hole (0-255 scale), the PSNR and L1 of the whole
composite, SSIM around the hole, the detail ratio and the seconds per fill, all at the photo's own size. ``smooth_backgrounds`` makes the pictures where Telea is at its best (flat colour, gradients,
a defocused photo), on which a shipped model must not do worse than Telea (``tests/test_pretrained.py``).

    inpaintlab strategies --out runs/strategies       # the measurement behind the default strategy
    inpaintlab strategies --images ../shared/highres_photos --every 4 --ratios 0.05,0.15,0.25 --seeds 1 \\
        --strategies resize,detail --out runs/highres   # the full-resolution protocol (docs/results.md)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .errors import InpaintlabError
from .masks import object_mask
from .metrics import detail_ratio, gaussian_window
from .pipeline import STRATEGIES, InpaintPipeline


def smooth_backgrounds(height: int, width: int, photo: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """[(name, (height,width,3) uint8)]: a flat colour, a two-colour diagonal gradient, a vertical sky-like
    gradient and, when ``photo`` is given, that photo resized and blurred (sigma = 2 % of the long side)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    diagonal = ((xx / width + yy / height) / 2)[:, :, None]
    vertical = (yy / height)[:, :, None]
    flat = np.broadcast_to(np.array([72, 140, 201], np.float64), (height, width, 3))
    pictures = [
        ("flat", flat),
        ("gradient", np.array([230, 120, 40]) * (1 - diagonal) + np.array([40, 90, 200]) * diagonal),
        ("sky", np.array([60, 120, 215]) * (1 - vertical) + np.array([200, 225, 245]) * vertical),
    ]
    if photo is not None:
        resized = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).astype(np.float64)
        pictures.append(("defocused", cv2.GaussianBlur(resized, (0, 0), 0.02 * max(height, width))))
    return [(name, np.clip(np.rint(p), 0, 255).astype(np.uint8)) for name, p in pictures]


MEASURES = ("hole_mae", "psnr", "l1", "ssim_box", "detail", "seconds")
BOX_MARGIN = 16  # pixels around the hole's box where ``ssim_box`` is measured


def hole_errors(result: np.ndarray, picture: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """Full-resolution measures of one fill, (H,W,3) uint8 x2 and (H,W) bool:
    "hole_mae" mean |result - picture| over hole pixels (0-255); "psnr" of the whole image (dB); "l1" mean
    absolute error of the whole image (%); "ssim_box" SSIM inside the hole's box grown by ``BOX_MARGIN``
    (the whole image's SSIM is mostly untouched pixels); "detail" the detail ratio (``metrics.detail_ratio``).
    """
    diff = result.astype(np.float64) - picture.astype(np.float64)
    mse = float(np.mean(diff**2))
    ys, xs = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    box = (
        slice(max(0, ys[0] - BOX_MARGIN), ys[-1] + 1 + BOX_MARGIN),
        slice(max(0, xs[0] - BOX_MARGIN), xs[-1] + 1 + BOX_MARGIN),
    )
    return {
        "hole_mae": float(np.abs(diff[hole]).mean()),
        "psnr": 10 * np.log10(255.0**2 / max(mse, 1e-10)),
        "l1": float(np.abs(diff).mean() / 255 * 100),
        "ssim_box": ssim_fast(result[box], picture[box]),
        "detail": float(detail_ratio(_tensor(result), torch.from_numpy(hole)[None, None].float())[0]),
    }


def ssim_fast(pred: np.ndarray, target: np.ndarray) -> float:
    """``metrics.ssim`` of two (H,W,3) uint8 pictures (equal to it within 1e-9), with OpenCV's separable
    float64 Gaussian filter: ~50x faster than torch's float64 convolution on CPU for multi-megapixel boxes."""
    x, y = pred.astype(np.float64) / 255, target.astype(np.float64) / 255
    taps = gaussian_window(11, 1.5).numpy()
    r = 5

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_CONSTANT)[r:-r, r:-r]

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def _tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None].float() / 255


def strategy_pictures(images: str, every: int = 1) -> list[tuple[str, np.ndarray]]:
    """[(name, HxWx3 uint8)] of ``inpaintlab strategies --images``: ``"builtin"`` (the built-in test photos at
    their own size plus ``smooth_backgrounds`` at 512) or a folder / .txt list; every ``every``-th of them."""
    from .data import _find_images, builtin_photo_paths, load_image

    if images == "builtin":
        photos = [(name, load_image(path)) for name, (path, split) in builtin_photo_paths().items() if split == "test"]
        pictures = photos + smooth_backgrounds(512, 512, photos[0][1])
    else:
        pictures = [(name, load_image(path)) for path, name in _find_images(images)]
    return pictures[::every]


def strategy_pipes(
    model: torch.nn.Module, strategies: Sequence[str], detail_strengths: Sequence[float] = (), size: int | None = None
) -> dict[str, tuple[InpaintPipeline, str | None]]:
    """The rows ``compare_strategies`` fills with: each strategy of the network alone (no smooth-region rule),
    ``detail@S`` for each strength, the model's own default pipeline where its card turns on the smooth-region
    rule (``shipped_default``), and Telea. ``size``: the working side (default: the card's or training size)."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InpaintlabError(f"unknown strategy {unknown[0]!r}; expected some of {', '.join(STRATEGIES)}")
    network = dict(train_size=size, smooth_threshold=0)
    pipes = {strategy: (InpaintPipeline(model, **network), strategy) for strategy in strategies}
    for strength in detail_strengths:
        pipes[f"detail@{strength:g}"] = (InpaintPipeline(model, detail_strength=strength, **network), "detail")
    shipped = InpaintPipeline(model, train_size=size)
    if shipped.smooth_threshold:
        pipes["shipped_default"] = (shipped, None)
    pipes["telea"] = (InpaintPipeline.from_checkpoint("telea"), "pad")
    return pipes


def compare_strategies(
    pipes: dict[str, tuple[InpaintPipeline, str]],
    pictures: Sequence[tuple[str, np.ndarray]],
    ratios: Sequence[float] = (0.1, 0.25, 0.4),
    seeds: int = 2,
) -> dict:
    """Fill each picture x ratio x seed with every pipeline (label -> (pipeline, strategy)).

    Returns {"rows": [{"picture", "size", "ratio", "seed", "detail_gt", "<label>": {measure: value}}],
    "mean": {label: {measure: mean}} (``MEASURES``: ``hole_errors`` and the seconds of the fill), "detail_gt":
    the originals' own detail ratio (what a perfect fill scores), "mean_by_ratio": {ratio: {label: {...}}}}.
    """
    rows = []
    for p_index, (name, picture) in enumerate(tqdm(pictures, desc="strategies", unit="picture")):
        for ratio in ratios:
            for seed in range(seeds):
                hole = object_mask(*picture.shape[:2], ratio, np.random.default_rng([p_index, int(ratio * 100), seed])) > 0
                row = {"picture": name, "size": list(picture.shape[:2]), "ratio": ratio, "seed": seed}
                row["detail_gt"] = hole_errors(picture, picture, hole)["detail"]
                for label, (pipe, strategy) in pipes.items():
                    began = time.perf_counter()
                    result = np.asarray(pipe(picture, hole, strategy=strategy))
                    row[label] = {**hole_errors(result, picture, hole), "seconds": time.perf_counter() - began}
                rows.append(row)

    def mean(selected: list[dict], label: str) -> dict[str, float]:
        return {k: float(np.nanmean([r[label][k] for r in selected])) for k in MEASURES}

    return {
        "rows": rows,
        "detail_gt": float(np.nanmean([r["detail_gt"] for r in rows])),
        "mean": {label: mean(rows, label) for label in pipes},
        "mean_by_ratio": {
            ratio: {label: mean([r for r in rows if r["ratio"] == ratio], label) for label in pipes} for ratio in ratios
        },
    }


def markdown(report: dict) -> str:
    """``compare_strategies`` as Markdown: hole MAE (lower is better) / PSNR by hole ratio, then every
    measure's mean per pipeline, with the originals' own detail ratio."""
    labels = list(report["mean"])
    lines = ["| holes | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for ratio, by_label in report["mean_by_ratio"].items():
        cells = [f"{by_label[k]['hole_mae']:.2f} / {by_label[k]['psnr']:.2f}" for k in labels]
        lines.append(f"| {ratio:.0%} | " + " | ".join(cells) + " |")
    cells = [f"**{report['mean'][k]['hole_mae']:.2f} / {report['mean'][k]['psnr']:.2f}**" for k in labels]
    lines.append("| mean | " + " | ".join(cells) + " |")
    lines += ["", "| pipeline | hole MAE | PSNR (dB) | L1 (%) | SSIM (hole box) | detail ratio | s / fill |"]
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        m = report["mean"][label]
        lines.append(
            f"| {label} | {m['hole_mae']:.2f} | {m['psnr']:.2f} | {m['l1']:.3f} | {m['ssim_box']:.4f} | "
            f"{m['detail']:.3f} | {m['seconds']:.2f} |"
        )
    lines.append(f"| ground truth | 0 | inf | 0 | 1 | {report['detail_gt']:.3f} | – |")
    return "\n".join(lines)


__all__ = [
    "compare_strategies",
    "hole_errors",
    "markdown",
    "smooth_backgrounds",
    "ssim_fast",
    "strategy_pictures",
    "strategy_pipes",
]

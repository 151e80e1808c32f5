"""Object removal at a photo's own size: measure each pipeline strategy against Telea.

``compare_strategies(pipes, pictures)`` fills every picture with object-shaped holes (``masks.object_mask``)
of the given ratios through each named pipeline (a model with a strategy, or a classical method) and
reports, per pipeline, the mean absolute error inside the hole (0-255 scale) and the PSNR of the whole
composite. ``smooth_backgrounds`` makes the pictures where Telea is at its best (flat colour, gradients,
a defocused photo), on which a shipped model must not do worse than Telea (``tests/test_pretrained.py``).

    inpaintlab strategies --out runs/strategies       # the measurement behind the default strategy
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .masks import object_mask
from .pipeline import InpaintPipeline


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


def hole_errors(result: np.ndarray, picture: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """{"hole_mae": mean |result - picture| over hole pixels (0-255), "psnr": PSNR of the whole image (dB)}."""
    diff = result.astype(np.float64) - picture.astype(np.float64)
    mse = float(np.mean(diff**2))
    return {"hole_mae": float(np.abs(diff[hole]).mean()), "psnr": 10 * np.log10(255.0**2 / max(mse, 1e-10))}


def compare_strategies(
    pipes: dict[str, tuple[InpaintPipeline, str]],
    pictures: Sequence[tuple[str, np.ndarray]],
    ratios: Sequence[float] = (0.1, 0.25, 0.4),
    seeds: int = 2,
) -> dict:
    """Fill each picture x ratio x seed with every pipeline (label -> (pipeline, strategy)).

    Returns {"rows": [{"picture", "ratio", "seed", "<label>": {"hole_mae", "psnr"}}],
    "mean": {label: {"hole_mae", "psnr"}}, "mean_by_ratio": {ratio: {label: {...}}}}.
    """
    rows = []
    for p_index, (name, picture) in enumerate(pictures):
        for ratio in ratios:
            for seed in range(seeds):
                hole = object_mask(*picture.shape[:2], ratio, np.random.default_rng([p_index, int(ratio * 100), seed])) > 0
                row = {"picture": name, "ratio": ratio, "seed": seed}
                for label, (pipe, strategy) in pipes.items():
                    row[label] = hole_errors(np.asarray(pipe(picture, hole, strategy=strategy)), picture, hole)
                rows.append(row)

    def mean(selected: list[dict], label: str) -> dict[str, float]:
        return {k: float(np.mean([r[label][k] for r in selected])) for k in ("hole_mae", "psnr")}

    return {
        "rows": rows,
        "mean": {label: mean(rows, label) for label in pipes},
        "mean_by_ratio": {
            ratio: {label: mean([r for r in rows if r["ratio"] == ratio], label) for label in pipes} for ratio in ratios
        },
    }


def markdown(report: dict) -> str:
    """The means of ``compare_strategies`` as a Markdown table (hole MAE, lower is better / PSNR)."""
    labels = list(report["mean"])
    lines = ["| holes | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for ratio, by_label in report["mean_by_ratio"].items():
        cells = [f"{by_label[k]['hole_mae']:.2f} / {by_label[k]['psnr']:.2f}" for k in labels]
        lines.append(f"| {ratio:.0%} | " + " | ".join(cells) + " |")
    cells = [f"**{report['mean'][k]['hole_mae']:.2f} / {report['mean'][k]['psnr']:.2f}**" for k in labels]
    lines.append("| mean | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["compare_strategies", "hole_errors", "markdown", "smooth_backgrounds"]

"""Evaluation and training reports: Markdown/CSV/JSON tables, metric and training plots, image grids.

The protocol (``evaluate.py``) and the trainer (``train.py``, ``run_folder.py``) write through this module:
``write_report`` (metrics.json, .csv, .md, plot_<metric>.png, samples.png), ``write_comparison`` (several
models side by side), ``markdown_table`` / ``compare`` (tables laid out like the papers': metric rows x
bin columns), ``paired_difference`` / ``paired_table`` (differences on the same pairs, with intervals),
``plot_metric``, ``plot_training_curves``, ``image_grid`` / ``save_image`` / ``save_sample_grid`` /
``save_comparison_grid``, and ``strict_json`` (JSON any parser reads).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .errors import InpaintlabError
from .types import composite

#: metric -> (unit, decimals printed in Markdown tables and on the sample grid; JSON/CSV keep every digit)
METRIC_FORMAT = {
    "l1": ("%", 2),
    "l1_relative": ("fraction", 4),
    "mse": ("", 5),
    "psnr": ("dB", 2),
    "psnr_uint8_trunc": ("dB", 2),
    "psnr_gray": ("dB", 2),
    "ssim": ("", 4),
    "ms_ssim": ("", 4),
    "ssim_win51_uint8": ("", 4),
    "ssim_gray_win51": ("", 4),
    "lpips": ("", 4),
    "fid": ("", 2),
    "detail": ("ratio", 3),
    "detail_gt": ("ratio", 3),
    "grid": ("share", 3),
    "grid_gt": ("share", 3),
    "lattice": ("share", 3),
    "lattice_gt": ("share", 3),
}


UNITS_NOTE = (
    "Units: L1 = mean absolute error in % of the [0,1] range; MSE on [0,1] values; PSNR in dB (data range 1); "
    "SSIM, MS-SSIM and LPIPS unitless; FID on InceptionV3 pool3 features."
)


GRID_ROWS = ("input (hole white)", "mask (white = hole)", "output (composite)", "ground truth")


def strict_json(obj: Any, **kwargs: Any) -> str:
    """JSON text that any parser reads: non-finite numbers (FID of a 1-image group, PSNR of an exact
    match) become ``null`` instead of Python's non-standard ``NaN``/``Infinity``."""

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(obj), allow_nan=False, **kwargs)


_LOWER_IS_BETTER = ("l1", "mse", "lpips", "fid", "grid", "lattice")  # grid, lattice: patterns locked to the pixels


def _metric_names(report: dict[str, Any]) -> list[str]:
    return list(report["settings"]["metrics"])


def _arrow(metric: str) -> str:
    """Which direction is better: "↓", "↑", or "" for the ground truth's own value (``*_gt``: a reference)."""
    if metric.endswith("_gt"):
        return ""
    return "↓" if metric.startswith(_LOWER_IS_BETTER) else "↑"


def _fmt(value: Any, metric: str = "") -> str:
    """``value`` with the fixed decimals of ``metric`` (``METRIC_FORMAT``); "–" for missing or non-finite."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{METRIC_FORMAT.get(metric, ('', 4))[1]}f}"


def _metric_label(metric: str) -> str:
    """``"psnr (dB) ↑"``: name, unit when it has one, and which direction is better."""
    unit = METRIC_FORMAT.get(metric, ("", 4))[0]
    return " ".join(part for part in (metric, f"({unit})" if unit else "", _arrow(metric)) if part)


def _columns(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Labels of the bins holding images in any report, in bin order, then "overall"."""
    labels = reports[0]["settings"]["bin_labels"]
    return [label for label in labels if any(label in r["bins"] for r in reports)] + ["overall"]


def _value(report: dict[str, Any], column: str, metric: str) -> Any:
    row = report["overall"] if column == "overall" else report["bins"].get(column, {})
    return row.get(metric)


def markdown_table(report: dict[str, Any]) -> str:
    """One model's table laid out like the papers: metric rows x hole-ratio bin columns (+ overall)."""
    s = report["settings"]
    columns = _columns([report])
    lines = [
        f"# {s['model']}: {s['masks']['kind']} masks, {s['images']['count']} images at "
        f"{s['images']['size']}x{s['images']['size']}",
        "",
        f"Images: {s['images'].get('preparation', 'preparation not recorded')}. "
        f"Masks: {s['masks'].get('preparation', s['masks']['kind'])}. {UNITS_NOTE}",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines.append("| images | " + " | ".join(str(_value(report, c, "count") or 0) for c in columns) + " |")
    for metric in _metric_names(report):
        cells = " | ".join(_fmt(_value(report, c, metric), metric) for c in columns)
        lines.append(f"| {_metric_label(metric)} | {cells} |")
    lines += ["", f"Masks: {json.dumps(s['masks'])}. Code {s['code_version']}, {s['date']}."]
    if s["feature_weights"]:
        lines.append(f"Feature-network weights (LPIPS/FID): {json.dumps(s['feature_weights'])}.")
    if s["masks"]["kind"] == "generated":
        lines.append("The generated masks are a seeded synthetic stand-in for the NVIDIA irregular-mask test set.")
    return "\n".join(lines) + "\n"


def compare(reports: Sequence[dict[str, Any]]) -> str:
    """Markdown putting several models side by side: one table per metric, model rows x bin columns.

    The best value of each column is in bold (none for the ground truth's own ``*_gt`` values).
    """
    if not reports:
        raise InpaintlabError("compare needs at least one report")
    columns = _columns(reports)
    out = []
    for metric in _metric_names(reports[0]):
        out += [f"## {_metric_label(metric)}", "", "| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        best = {}
        for c in columns:
            values = [v for r in reports if isinstance(v := _value(r, c, metric), (int, float)) and np.isfinite(v)]
            if values and _arrow(metric):
                best[c] = min(values) if _arrow(metric) == "↓" else max(values)
        for r in reports:
            cells = []
            for c in columns:
                v = _value(r, c, metric)
                text = _fmt(v, metric)
                cells.append(f"**{text}**" if len(reports) > 1 and v is not None and v == best.get(c) else text)
            out.append(f"| {r['settings'].get('label', r['settings']['model'])} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def paired_difference(
    reference: dict[str, Any], candidate: dict[str, Any], metric: str, *, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """``candidate`` minus ``reference`` in ``metric`` over the pairs both scored, with a 95 % interval.

    Pairs are matched by name (the same image and mask: both reports must come from the same pairs) and a
    pair without a finite value in either (e.g. no ring for the detail ratio) is left out, so ``mean`` is
    the difference of the two ``overall`` means. The interval is a percentile bootstrap over source images,
    not pairs: the pairs of one photo rise and fall together.
    Returns {"mean", "ci95": [low, high], "pairs", "images"}.
    """
    own = {r["name"]: r["values"].get(metric) for r in reference.get("per_image") or []}
    theirs = {r["name"]: r["values"].get(metric) for r in candidate.get("per_image") or []}
    if not own or set(own) != set(theirs):
        raise InpaintlabError(
            f"paired difference of {metric!r}: the two reports must hold per-image values of the same pairs "
            f"(got {len(own)} and {len(theirs)} pairs, {len(set(own) ^ set(theirs))} not in both)"
        )
    by_image: dict[str, list[float]] = {}
    for name, a in own.items():
        b = theirs[name]
        if a is not None and b is not None and np.isfinite(a) and np.isfinite(b):
            by_image.setdefault(name.rsplit("|", 2)[0], []).append(b - a)
    if not by_image:
        raise InpaintlabError(f"paired difference of {metric!r}: no pair has a finite value in both reports")
    sums = np.array([sum(d) for d in by_image.values()])
    counts = np.array([len(d) for d in by_image.values()])
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(resamples, len(sums)))
    low, high = np.percentile(sums[draws].sum(axis=1) / counts[draws].sum(axis=1), [2.5, 97.5])
    return {
        "mean": float(sums.sum() / counts.sum()),
        "ci95": [float(low), float(high)],
        "pairs": int(counts.sum()),
        "images": len(sums),
    }


def paired_table(reports: Sequence[dict[str, Any]], metrics: Sequence[str] = ("psnr", "ssim", "l1", "detail")) -> str:
    """Markdown: each report after the first minus the first (``paired_difference``: mean and 95 % interval)
    in each of ``metrics`` that the reports hold."""
    first, label = reports[0], lambda r: r["settings"].get("label", r["settings"]["model"])
    names = [m for m in metrics if m in first["overall"]]
    lines = [
        f"## Paired differences to `{label(first)}` (mean over the same pairs, 95 % bootstrap interval over images)",
        "",
        "| model | " + " | ".join(_metric_label(m) for m in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for report in reports[1:]:
        cells = []
        for metric in names:
            d = paired_difference(first, report, metric)
            digits = METRIC_FORMAT.get(metric, ("", 4))[1] + 1
            cells.append(f"{d['mean']:+.{digits}f} [{d['ci95'][0]:+.{digits}f}, {d['ci95'][1]:+.{digits}f}]")
        lines.append(f"| {label(report)} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])


def plot_metric(reports: Sequence[dict[str, Any]], metric: str, path: str | Path) -> Path:
    """PNG of ``metric`` against hole ratio (bin midpoints), one line per report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = reports[0]["settings"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in reports:
        points = [((lo + hi) / 2, _value(r, label, metric)) for (lo, hi), label in zip(s["bins"], s["bin_labels"])]
        points = [(x, y) for x, y in points if y is not None and np.isfinite(y)]
        if points:
            ax.plot(*zip(*points), marker="o", label=r["settings"].get("label", r["settings"]["model"]))
    ax.set_xlabel("hole ratio")
    ax.set_ylabel(_metric_label(metric))
    ax.grid(alpha=0.3)
    if ax.lines:  # a metric without a finite value in any bin (e.g. the lattice share of tiny holes) draws none
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def image_grid(image: Tensor, mask: Tensor, outputs: tuple[Tensor, ...], rows: int = 4) -> Tensor:
    """(3, rows*H, cols*W) in [0,1]; columns: input (hole grey), each output, final composite, target."""
    image, mask, outputs = image[:rows].float(), mask[:rows].float(), [o[:rows].float() for o in outputs]
    columns = [image * (1 - mask) + 0.5 * mask, *outputs, composite(outputs[-1], image, mask), image]
    return torch.cat([torch.cat(list(col), dim=1) for col in columns], dim=2).clamp(0, 1)


def save_image(image: Tensor, path: str | Path) -> Path:
    """Write a (3,H,W) [0,1] tensor as an 8-bit PNG."""
    Image.fromarray(image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()).save(path)
    return Path(path)


def plot_training_curves(metrics_jsonl: str | Path, path: str | Path) -> Path:
    """PNG of a training run's ``metrics.jsonl``: generator loss and validation PSNR/SSIM against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    panels = [("g/total", "generator loss"), ("val/psnr", "validation PSNR (dB)"), ("val/ssim", "validation SSIM")]
    panels += [("val_train/psnr", "PSNR on training images (dB)"), ("val_train/ssim", "SSIM on training images")]
    panels = [(key, title) for key, title in panels if any(key in r for r in rows)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        if points:
            ax.plot(*zip(*points), marker="o" if key.startswith("val") else None, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_sample_grid(
    samples: Sequence[tuple[Tensor, Tensor, Tensor]],
    path: str | Path,
    captions: Sequence[tuple[str, str]] = (),
    corner: tuple[str, str] = ("", ""),
) -> Path:
    """PNG grid, one column per sample (image (3,H,W), mask (1,H,W), composite (3,H,W)); rows (``GRID_ROWS``):
    input with the hole in white, mask, output (composite), ground truth; 2 px white gaps between tiles.

    With ``captions`` (two lines per column, e.g. its hole-ratio bin and its score) the rows are labelled on
    the left, each column is headed by its caption and ``corner`` says what the two caption lines are.
    """
    tiles = [
        [im * (1 - m) + m for im, m, _ in samples],
        [m.expand(3, -1, -1) for _, m, _ in samples],
        [c for _, _, c in samples],
        [im for im, _, _ in samples],
    ]
    return save_labelled_grid(list(zip(GRID_ROWS, tiles)), path, captions, corner)


def save_comparison_grid(
    samples: dict[str, Sequence[tuple[Tensor, Tensor, Tensor]]],
    path: str | Path,
    captions: Sequence[tuple[str, str]] = (),
    corner: tuple[str, str] = ("", ""),
) -> Path:
    """PNG grid of several models on the same (image, mask) pairs: ``samples`` maps a model's label to its
    ``(image (3,H,W), mask (1,H,W), composite (3,H,W))`` columns, the same images and masks for every model.

    Rows: input with the hole in white, one row per model (its composite), ground truth.
    """
    first = next(iter(samples.values()))
    for label, columns in samples.items():
        if len(columns) != len(first) or any(not torch.equal(a[1], b[1]) for a, b in zip(columns, first)):
            raise InpaintlabError(f"the comparison grid needs the same masks for every model; {label!r} differs")
    rows = [("input (hole white)", [im * (1 - m) + m for im, m, _ in first])]
    rows += [(label, [c for _, _, c in columns]) for label, columns in samples.items()]
    rows.append(("ground truth", [im for im, _, _ in first]))
    return save_labelled_grid(rows, path, captions, corner)


def save_labelled_grid(
    rows: Sequence[tuple[str, Sequence[Tensor]]],
    path: str | Path,
    captions: Sequence[tuple[str, str]] = (),
    corner: tuple[str, str] = ("", ""),
) -> Path:
    """PNG of ``rows`` = [(row label, [(3,H,W) tiles in [0,1]])], all rows with the same number of tiles;
    2 px white gaps. With ``captions`` (two lines per column) the rows are labelled on the left, each column
    is headed by its caption and ``corner`` says what the two caption lines are."""
    grid = torch.cat([torch.cat([F.pad(t, (1, 1, 1, 1), value=1.0) for t in tiles], dim=2) for _, tiles in rows], dim=1)
    if not captions:
        return save_image(grid, path)
    tile = grid.shape[1] // len(rows)
    font = _font(max(10, min(16, tile // 8)))
    width = lambda text: font.getbbox(text)[2] if text else 0  # noqa: E731
    line = font.size + 4
    left = max(width(t) for t in (*(label for label, _ in rows), *corner)) + 10
    tiles = Image.fromarray(grid.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())
    canvas = Image.new("RGB", (left + tiles.width, 2 * line + 6 + tiles.height), "white")
    canvas.paste(tiles, (left, 2 * line + 6))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(corner):
        draw.text((4, 3 + k * line), text, fill=(90, 90, 90), font=font)
    for r, (text, _) in enumerate(rows):
        draw.text((4, 2 * line + 6 + r * tile + (tile - font.size) // 2), text, fill="black", font=font)
    for c, pair in enumerate(captions):
        for k, text in enumerate(pair):
            draw.text((left + c * tile + (tile - width(text)) // 2, 3 + k * line), text, fill="black", font=font)
    canvas.save(path)
    return Path(path)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def write_report(report: dict[str, Any], out_dir: str | Path, samples: Sequence[tuple[Tensor, Tensor, Tensor]] = ()) -> Path:
    """Write metrics.json, metrics.csv, metrics.md, plot_<metric>.png and samples.png to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(strict_json(report, indent=2))
    metrics = _metric_names(report)
    with open(out / "metrics.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["bin", "images", *metrics])
        for column in _columns([report]):
            values = [_value(report, column, m) for m in metrics]
            writer.writerow([column, _value(report, column, "count") or 0, *values])
    (out / "metrics.md").write_text(markdown_table(report))
    for metric in metrics:
        plot_metric([report], metric, out / f"plot_{metric}.png")
    if samples:
        captions, corner = _sample_captions(report, with_score=True)
        save_sample_grid(samples, out / "samples.png", captions if len(captions) == len(samples) else (), corner)
    return out


def _sample_captions(report: dict[str, Any], with_score: bool) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """(captions, corner) of a report's sample columns: each column's hole-ratio bin and, ``with_score``,
    its score; without, its measured hole ratio (the same for every model)."""
    shown = report.get("samples", {})
    score = shown.get("score")
    unit = METRIC_FORMAT.get(score, ("", 4))[0]
    if not with_score:
        return (
            [(c["bin_label"] or "outside the bins", f"hole {100 * (c['ratio'] or 0):.0f} %") for c in shown.get("columns", [])],
            ("hole-ratio bin", "measured hole"),
        )
    captions = [
        (c["bin_label"] or "outside the bins", f"{_fmt(c['score'], score)} {unit}".strip()) for c in shown.get("columns", [])
    ]
    return captions, ("hole-ratio bin", f"{score} ({unit})" if unit else str(score or ""))


def write_comparison(
    reports: Sequence[dict[str, Any]],
    labels: Sequence[str],
    out_dir: str | Path,
    title: str,
    samples: Sequence[Sequence[tuple[Tensor, Tensor, Tensor]]] = (),
) -> Path:
    """The side-by-side page of several models' reports (each already written to ``out_dir/<label>/``):
    ``out_dir/README.md`` (``compare`` tables + links), ``out_dir/plot_<metric>.png`` (one line per model)
    and, given each model's sample columns (``samples[k]`` for ``labels[k]``, the same images and masks),
    ``out_dir/samples.png``: every model on the same images, one row each."""
    out = Path(out_dir)
    for metric in _metric_names(reports[0]):
        plot_metric(reports, metric, out / f"plot_{metric}.png")
    if samples:
        captions, corner = _sample_captions(reports[0], with_score=False)
        save_comparison_grid(dict(zip(labels, samples)), out / "samples.png", captions, corner)
    s = reports[0]["settings"]
    lines = [
        f"# {title}",
        "",
        f"{s['images']['count']} images at {s['images']['size']}x{s['images']['size']}, "
        f"masks: {json.dumps(s['masks'])}, seed {s['seed']}, code {s['code_version']}, {s['date']}.",
        "",
        f"Images: {s['images']['preparation']}. {UNITS_NOTE}",
        "",
    ]
    if s["masks"]["kind"] == "generated":
        lines += ["The masks are a seeded synthetic stand-in for the NVIDIA irregular-mask test set.", ""]
    lines += [compare(reports)]
    if len(reports) > 1:
        lines += [paired_table(reports)]
    lines += ["## Plots", ""]
    lines += [f"![{m} against hole ratio](plot_{m}.png)" for m in _metric_names(reports[0])]
    if samples:
        lines += [
            "",
            "## Every model on the same images and masks (rows: input, each model, ground truth)",
            "",
            "![every model](samples.png)",
        ]
    lines += ["", "## Samples (rows: input, mask, output, ground truth; each column headed by its hole-ratio bin and score)", ""]
    for label in labels:
        lines += [
            f"{label} (`{label}/`: metrics.json, metrics.csv, metrics.md, plots)",
            "",
            f"![{label}]({label}/samples.png)",
            "",
        ]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = [
    "GRID_ROWS",
    "METRIC_FORMAT",
    "UNITS_NOTE",
    "compare",
    "image_grid",
    "markdown_table",
    "plot_metric",
    "plot_training_curves",
    "save_image",
    "save_sample_grid",
    "strict_json",
    "write_comparison",
    "write_report",
]

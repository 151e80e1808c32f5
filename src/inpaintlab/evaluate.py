"""Evaluation protocol: model x masks-by-bin x metrics -> metrics.json / .csv / .md, plots and a sample grid.

Protocol (deterministic, the same on one process or many):
- Mask groups. ``"bins"``: for each hole-ratio bin k, masks are generated in memory, mask j of bin k by
  ``bin_stroke_mask(size, k, default_rng([seed, k, j]), margin)`` with margin 0 for even j and
  ``size // 16`` (16 px at 256) for odd j, mirroring the NVIDIA set's halves with and without a border
  constraint; one mask per image per bin. Coarser groups that are unions of the six bins (``BIN_SETS``:
  CICM's 0-20/20-40/40-60 %) use, for mask j, mask j of one of the bins they cover (chosen by a seeded
  draw), so every grouping reuses the six-bin protocol's masks. A ``MaskFolder``: its masks binned by measured ratio (after
  its nearest resize), bins without masks are skipped. ``"center"`` (square of side size/2) and
  ``"circles"`` (LGNet's circle masks): one fixed group.
- Pairing: within each group of n masks, image i gets mask ``i mod n`` (LGNet's test script does the
  same). Every image is evaluated once per group.
- The model runs in eval mode under ``no_grad`` on batches; inputs are padded to the model's
  ``size_multiple`` by the pipeline's rule (``types.pad_to_multiple``: image and mask reflected together, so
  a hole at the border stays a hole) and cropped back; metrics see ``composite(pred, image, mask)``
  only and are binned by the measured hole ratio of each mask (``MetricTracker``).
- Under ``torch.distributed`` the (image, group) work list is split over ranks (``rank::world``),
  metric states are gathered and rank 0 writes the files.
- Reports state the unit of every metric (``METRIC_FORMAT``: L1 in %, PSNR in dB...) and print each metric
  with a fixed number of decimals; they say how the images were brought to the evaluation size (the
  dataset's ``preparation()``) and how masks were made or read. The sample grid labels its rows and heads
  each column with its measured hole-ratio bin and its score.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from .distributed import rank_and_world
from .errors import InpaintlabError
from .masks import BIN_SETS, HOLE_RATIO_BINS, MaskFolder, bin_stroke_mask, center_square, lgnet_circles, parse_bins
from .metrics import MetricTracker
from .types import composite, contract_of, pad_to_multiple

MASK_SETS = ("bins", "center", "circles")
MaskGetter = Callable[[int], Tensor]

#: metric -> (unit, decimals printed in Markdown tables and on the sample grid; JSON/CSV keep every digit)
METRIC_FORMAT = {
    "l1": ("%", 2), "l1_relative": ("fraction", 4), "mse": ("", 5), "psnr": ("dB", 2), "psnr_uint8_trunc": ("dB", 2),
    "psnr_gray": ("dB", 2), "ssim": ("", 4), "ms_ssim": ("", 4), "ssim_win51_uint8": ("", 4), "ssim_gray_win51": ("", 4),
    "lpips": ("", 4), "fid": ("", 2),
}
UNITS_NOTE = ("Units: L1 = mean absolute error in % of the [0,1] range; MSE on [0,1] values; PSNR in dB (data range 1); "
              "SSIM, MS-SSIM and LPIPS unitless; FID on InceptionV3 pool3 features.")
GRID_ROWS = ("input (hole white)", "mask (white = hole)", "output (composite)", "ground truth")


def mask_groups(masks: str | MaskFolder, size: int, n_images: int, bins: Sequence = HOLE_RATIO_BINS,
                seed: int = 0) -> tuple[list[tuple[str, int, MaskGetter]], dict[str, Any]]:
    """Mask groups of the protocol (module docstring): ([(label, n_masks, j -> (1,size,size))], description).

    bins: (lo, hi] hole-ratio intervals; generated masks exist for ``HOLE_RATIO_BINS`` and unions of them.
    """
    labels = [f"({lo:g},{hi:g}]" for lo, hi in bins]
    if isinstance(masks, MaskFolder):
        groups = []
        for label, (lo, hi) in zip(labels, bins):
            indices = masks.indices_in_range(lo, hi)
            groups.append((label, len(indices), lambda j, ix=indices: masks[ix[j]]))
        if not any(n for _, n, _ in groups):
            raise InpaintlabError(f"no mask in {masks.root} has a hole ratio inside the bins {list(bins)}; "
                                  "expected masks with white (>127) = hole")
        return groups, {"kind": "folder", "root": str(masks.root), "count": len(masks),
                        "per_bin": {label: n for label, n, _ in groups},
                        "preparation": f"mask files nearest-neighbour resized to {size}x{size}, grey > 127 = hole"}
    if masks == "bins":
        covers = [_covered_standard_bins(lo, hi) for lo, hi in bins]

        def generated(k: int) -> MaskGetter:
            def get(j: int) -> Tensor:  # a group spanning several standard bins draws one of them per mask
                b = covers[k][int(np.random.default_rng([seed, k, j, 1]).integers(len(covers[k])))]
                rng = np.random.default_rng([seed, b, j])  # = mask j of standard bin b in the six-bin protocol
                return _as_mask_tensor(bin_stroke_mask(size, b, rng, 0 if j % 2 == 0 else size // 16))
            return get

        groups = [(labels[k], n_images, generated(k)) for k in range(len(bins))]
        return groups, {"kind": "generated", "generator": "bin_stroke_mask", "seed": seed,
                        "margin": f"0 for even mask index, {size // 16} for odd", "per_bin": n_images,
                        "preparation": f"drawn at {size}x{size}",
                        "standard_bins_per_group": {labels[k]: covers[k] for k in range(len(bins))}}
    if masks == "center":
        square = _as_mask_tensor(center_square(size, size // 2))
        return [("center", 1, lambda j: square)], {"kind": "center", "side": size // 2}
    if masks == "circles":
        circles = [_as_mask_tensor(m) for m in lgnet_circles(size)]
        return [("circles", len(circles), lambda j: circles[j])], {"kind": "circles", "count": len(circles)}
    raise InpaintlabError(f"masks must be a mask folder or one of {MASK_SETS}, got {masks!r}")


def _covered_standard_bins(lo: float, hi: float) -> list[int]:
    """Indices of the standard bins whose union is (lo, hi] (generated masks exist only for those)."""
    inside = [k for k, (a, b) in enumerate(HOLE_RATIO_BINS) if a >= lo - 1e-9 and b <= hi + 1e-9]
    edges = [HOLE_RATIO_BINS[k] for k in inside]
    contiguous = all(edges[i][1] == edges[i + 1][0] for i in range(len(edges) - 1))
    first_ok = bool(edges) and (abs(edges[0][0] - lo) < 1e-9 or (lo <= 0.01 and edges[0][0] == 0.01))
    if not (first_ok and contiguous and abs(edges[-1][1] - hi) < 1e-9):
        raise InpaintlabError(f"generated masks cover unions of the bins {HOLE_RATIO_BINS}; ({lo:g},{hi:g}] is not one: "
                              "pass a mask folder to use other bins")
    return inside


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


def _as_mask_tensor(mask: np.ndarray) -> Tensor:
    """(H,W) uint8 {0,1} from masks.py -> (1,H,W) float {0,1}."""
    return torch.from_numpy(np.asarray(mask) > 0).float()[None]


def _padded_forward(model: nn.Module, image: Tensor, mask: Tensor) -> Tensor:
    """model(image, mask).pred with H, W padded up to ``model.size_multiple`` (``pad_to_multiple``, the
    pipeline's rule) and cropped back."""
    h, w = image.shape[-2:]
    image, mask = pad_to_multiple(image, mask, contract_of(model).size_multiple)
    return model(image, mask).pred[..., :h, :w]


def evaluate(model: nn.Module, images: Dataset, masks: str | MaskFolder = "bins", *,
             metrics: Sequence[str] = ("l1", "psnr", "ssim"), bins: Sequence = HOLE_RATIO_BINS,
             batch_size: int = 8, device: str | torch.device = "cpu", out_dir: str | Path | None = None,
             max_images: int | None = None, grid_size: int = 8, seed: int = 0, progress: bool = True,
             settings: dict[str, Any] | None = None, feature_weights: Any = "pretrained") -> dict[str, Any]:
    """Run the protocol (module docstring) and return the report; rank 0 writes it to ``out_dir``.

    Predictions are clamped to [0,1] before compositing. The sample grid (``grid_size`` pairs evenly
    spaced over the work list) comes from rank 0's share when distributed.

    images: dataset of ``Sample(image (3,S,S), ...)``; masks: MaskFolder or "bins"/"center"/"circles".
    feature_weights: LPIPS/FID weights, passed to ``MetricTracker`` ("pretrained", "random" or a mapping).
    Report: {"settings", "overall": {metric: value, "count": n}, "bins": {label: {...}} (empty bins left
    out), "per_image": [{"name", "ratio", "bin", "bin_label", "values"}]}.
    """
    from . import __version__

    if batch_size < 1 or (max_images is not None and max_images < 1):
        raise InpaintlabError(f"batch size and max images must be >= 1, got {batch_size}, {max_images}")
    n_images = len(images) if max_images is None else min(max_images, len(images))
    if n_images == 0:
        raise InpaintlabError("the image source is empty")
    size = images[0].image.shape[-1]
    groups, mask_info = mask_groups(masks, size, n_images, bins, seed)
    work = [(i, g) for i in range(n_images) for g, (_, n, _) in enumerate(groups) if n]
    rank, world = rank_and_world()
    mine = work[rank::world]
    shown = set(np.linspace(0, len(mine) - 1, min(grid_size, len(mine))).round().astype(int).tolist())
    samples: list[tuple[Tensor, Tensor, Tensor]] = []
    sample_names: list[str] = []

    model = model.to(device).eval()
    tracker = MetricTracker(metrics=tuple(metrics), bins=bins, feature_weights=feature_weights)
    cached: tuple[int, Any] = (-1, None)
    bar = tqdm(total=len(mine), desc=f"eval {contract_of(model).model_name}", disable=not progress or rank)
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            batch = mine[start:start + batch_size]
            image_list, mask_list, names = [], [], []
            for i, g in batch:
                if cached[0] != i:
                    cached = (i, images[i])
                label, n, get = groups[g]
                image_list.append(cached[1].image)
                mask_list.append(get(i % n))
                names.append(f"{cached[1].name}|{label}|mask {i % n}")
            image = torch.stack(image_list).to(device)
            mask = torch.stack(mask_list).to(device)
            comp = composite(_padded_forward(model, image, mask).clamp(0, 1), image, mask)
            tracker.update(comp, image, mask, names)
            for b in range(len(batch)):
                if start + b in shown:
                    samples.append(tuple(t[b].cpu() for t in (image, mask, comp)))
                    sample_names.append(names[b])
            bar.update(len(batch))
    bar.close()
    tracker.gather()

    result = tracker.result()
    records = {r.get("name"): r for r in tracker.per_image()}
    score = next((m for m in ("psnr", *tracker.metrics) if m in tracker.metrics and m != "fid"), None)
    columns = [{"name": n, "ratio": records.get(n, {}).get("ratio"), "bin_label": records.get(n, {}).get("bin_label"),
                "score": records.get(n, {}).get("values", {}).get(score)} for n in sample_names]
    report = {
        "settings": {
            **(settings or {}),
            "model": contract_of(model).model_name,
            "model_kwargs": contract_of(model).model_kwargs,
            "images": {"count": n_images, "size": size, "preparation": dataset_preparation(images)},
            "masks": mask_info,
            "protocol": "image i paired with mask (i mod n) of each mask group; metrics on the composite, "
                        "binned by measured hole ratio",
            "metrics": list(tracker.metrics),
            "units": {m: METRIC_FORMAT.get(m, ("", 4))[0] for m in tracker.metrics},
            "bins": [list(b) for b in tracker.bins],
            "bin_labels": [tracker.bin_label(k) for k in range(len(tracker.bins))],
            "feature_weights": tracker.settings["feature_weights"],
            "batch_size": batch_size,
            "device": str(device),
            "world_size": world,
            "seed": seed,
            "code_version": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "overall": result["overall"],
        "bins": result["bins"],
        "per_image": tracker.per_image(),
        "samples": {"rows": list(GRID_ROWS), "score": score, "columns": columns},
    }
    if out_dir is not None and rank == 0:
        write_report(report, out_dir, samples)
    return report


# ------------------------------------------------------------------------------------------- reports

_LOWER_IS_BETTER = ("l1", "mse", "lpips", "fid")


def _metric_names(report: dict[str, Any]) -> list[str]:
    return list(report["settings"]["metrics"])


def _arrow(metric: str) -> str:
    return "↓" if metric.startswith(_LOWER_IS_BETTER) else "↑"


def dataset_preparation(images: Dataset) -> str:
    """How ``images`` (or the dataset a ``Subset`` wraps) brings each image to the evaluation size."""
    while isinstance(images, Subset):
        images = images.dataset
    prepare = getattr(images, "preparation", None)
    return prepare() if callable(prepare) else "not stated by the dataset (its images used as given)"


def _fmt(value: Any, metric: str = "") -> str:
    """``value`` with the fixed decimals of ``metric`` (``METRIC_FORMAT``); "–" for missing or non-finite."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{METRIC_FORMAT.get(metric, ('', 4))[1]}f}"


def _metric_label(metric: str) -> str:
    """``"psnr (dB) ↑"``: name, unit when it has one, and which direction is better."""
    unit = METRIC_FORMAT.get(metric, ("", 4))[0]
    return f"{metric}{f' ({unit})' if unit else ''} {_arrow(metric)}"


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

    The best value of each column is in bold.
    """
    if not reports:
        raise InpaintlabError("compare needs at least one report")
    columns = _columns(reports)
    out = []
    for metric in _metric_names(reports[0]):
        out += [f"## {_metric_label(metric)}", "", "| model | " + " | ".join(columns) + " |",
                "|---" * (len(columns) + 1) + "|"]
        best = {}
        for c in columns:
            values = [v for r in reports if isinstance(v := _value(r, c, metric), (int, float)) and np.isfinite(v)]
            if values:
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
    panels = [(key, title) for key, title in panels if any(key in r for r in rows)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        if points:
            ax.plot(*zip(*points), marker="o" if key.startswith("val/") else None, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_sample_grid(samples: Sequence[tuple[Tensor, Tensor, Tensor]], path: str | Path,
                     captions: Sequence[tuple[str, str]] = (), corner: tuple[str, str] = ("", "")) -> Path:
    """PNG grid, one column per sample (image (3,H,W), mask (1,H,W), composite (3,H,W)); rows (``GRID_ROWS``):
    input with the hole in white, mask, output (composite), ground truth; 2 px white gaps between tiles.

    With ``captions`` (two lines per column, e.g. its hole-ratio bin and its score) the rows are labelled on
    the left, each column is headed by its caption and ``corner`` says what the two caption lines are.
    """
    rows = []
    for pick in (lambda im, m, c: im * (1 - m) + m, lambda im, m, c: m.expand(3, -1, -1),
                 lambda im, m, c: c, lambda im, m, c: im):
        rows.append(torch.cat([F.pad(pick(*s), (1, 1, 1, 1), value=1.0) for s in samples], dim=2))
    grid = torch.cat(rows, dim=1)
    if not captions:
        return save_image(grid, path)
    tile = grid.shape[1] // len(GRID_ROWS)
    font = _font(max(10, min(16, tile // 8)))
    width = lambda text: font.getbbox(text)[2] if text else 0  # noqa: E731
    line = font.size + 4
    left = max(width(t) for t in (*GRID_ROWS, *corner)) + 10
    tiles = Image.fromarray(grid.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())
    canvas = Image.new("RGB", (left + tiles.width, 2 * line + 6 + tiles.height), "white")
    canvas.paste(tiles, (left, 2 * line + 6))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(corner):
        draw.text((4, 3 + k * line), text, fill=(90, 90, 90), font=font)
    for r, text in enumerate(GRID_ROWS):
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


def write_report(report: dict[str, Any], out_dir: str | Path,
                 samples: Sequence[tuple[Tensor, Tensor, Tensor]] = ()) -> Path:
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
        shown = report.get("samples", {})
        score = shown.get("score")
        unit = METRIC_FORMAT.get(score, ("", 4))[0]
        captions = [(c["bin_label"] or "outside the bins", f"{_fmt(c['score'], score)} {unit}".strip())
                    for c in shown.get("columns", [])]
        corner = ("hole-ratio bin", f"{score} ({unit})" if unit else str(score or ""))
        save_sample_grid(samples, out / "samples.png", captions if len(captions) == len(samples) else (), corner)
    return out


def evaluate_models(models: Sequence[tuple[str, nn.Module]], images: Dataset, masks: str | MaskFolder,
                    out_dir: str | Path, *, title: str = "inpaintlab evaluation", settings: dict | None = None,
                    model_settings: dict[str, dict] | None = None, **kwargs) -> list[dict[str, Any]]:
    """``evaluate`` each (label, model) into ``out_dir/<label>/`` and write the side-by-side comparison:
    ``out_dir/README.md`` (``compare`` tables + links) and ``out_dir/plot_<metric>.png`` (one line per model).

    settings: recorded for every model; model_settings: label -> extra settings (e.g. its checkpoint).
    kwargs go to ``evaluate``.
    """
    labels = [label for label, _ in models]
    if len(set(labels)) != len(labels):
        raise InpaintlabError(f"model labels must be unique, got {labels}")
    out = Path(out_dir)
    reports = []
    for label, model in models:
        own = {**(settings or {}), **(model_settings or {}).get(label, {}), "label": label}
        reports.append(evaluate(model, images, masks, out_dir=out / label, settings=own, **kwargs))
    if rank_and_world()[0] == 0:
        for metric in _metric_names(reports[0]):
            plot_metric(reports, metric, out / f"plot_{metric}.png")
        s = reports[0]["settings"]
        lines = [f"# {title}", "", f"{s['images']['count']} images at {s['images']['size']}x{s['images']['size']}, "
                 f"masks: {json.dumps(s['masks'])}, seed {s['seed']}, code {s['code_version']}, {s['date']}.", "",
                 f"Images: {s['images']['preparation']}. {UNITS_NOTE}", ""]
        if s["masks"]["kind"] == "generated":
            lines += ["The masks are a seeded synthetic stand-in for the NVIDIA irregular-mask test set.", ""]
        lines += [compare(reports), "## Plots", ""]
        lines += [f"![{m} against hole ratio](plot_{m}.png)" for m in _metric_names(reports[0])]
        lines += ["", "## Samples (rows: input, mask, output, ground truth; each column headed by its hole-ratio bin "
                  "and score)", ""]
        for label in labels:
            lines += [f"{label} (`{label}/`: metrics.json, metrics.csv, metrics.md, plots)", "",
                      f"![{label}]({label}/samples.png)", ""]
        (out / "README.md").write_text("\n".join(lines) + "\n")
    return reports


def demo_models() -> tuple[str, ...]:
    """The demo's rows: the shipped default model (when its weights are present), Telea, Navier-Stokes."""
    from .serve import default_models

    return default_models()


def run_demo(out_dir: str | Path = "runs/demo", models: Sequence[str] | None = None, *, size: int = 256,
             max_images: int | None = 12, metrics: Sequence[str] = ("l1", "psnr", "ssim"), seed: int = 0,
             progress: bool = True) -> Path:
    """Built-in test photos x generated masks in the six bins x ``models`` -> ``out_dir/README.md``.

    models: names with weights, classical names or checkpoint paths (None = ``demo_models()``). Returns
    the README path.
    max_images: that many test photos (evenly spaced over the built-in list, so every photo appears);
    12 keeps the two classical baselines at about a minute on 2 CPU cores.
    """
    from .data import build_dataset
    from .pretrained import resolve_model

    images = build_dataset("builtin", split="test", size=size)
    if max_images is not None and max_images < len(images):  # spread the subset over all test photos
        images = Subset(images, np.linspace(0, len(images) - 1, max_images).round().astype(int).tolist())
    loaded = [(Path(spec).stem if str(spec).endswith(".safetensors") else spec, resolve_model(spec))
              for spec in (models or demo_models())]
    evaluate_models(loaded, images, "bins", out_dir, title="inpaintlab demo", metrics=metrics,
                    seed=seed, progress=progress,
                    settings={"images_source": "builtin (test split)"})
    return Path(out_dir) / "README.md"

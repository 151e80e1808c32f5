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

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from .distributed import rank_and_world
from .errors import InpaintlabError
from .masks import HOLE_RATIO_BINS, MaskFolder, bin_stroke_mask, center_square, lgnet_circles
from .metrics import MetricTracker
from .report import GRID_ROWS, METRIC_FORMAT, write_comparison, write_report
from .types import composite, contract_of, pad_to_multiple

MASK_SETS = ("bins", "center", "circles")
MaskGetter = Callable[[int], Tensor]


def mask_groups(
    masks: str | MaskFolder, size: int, n_images: int, bins: Sequence = HOLE_RATIO_BINS, seed: int = 0
) -> tuple[list[tuple[str, int, MaskGetter]], dict[str, Any]]:
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
            raise InpaintlabError(
                f"no mask in {masks.root} has a hole ratio inside the bins {list(bins)}; expected masks with white (>127) = hole"
            )
        return groups, {
            "kind": "folder",
            "root": str(masks.root),
            "count": len(masks),
            "per_bin": {label: n for label, n, _ in groups},
            "preparation": f"mask files nearest-neighbour resized to {size}x{size}, grey > 127 = hole",
        }
    if masks == "bins":
        covers = [_covered_standard_bins(lo, hi) for lo, hi in bins]

        def generated(k: int) -> MaskGetter:
            def get(j: int) -> Tensor:  # a group spanning several standard bins draws one of them per mask
                b = covers[k][int(np.random.default_rng([seed, k, j, 1]).integers(len(covers[k])))]
                rng = np.random.default_rng([seed, b, j])  # = mask j of standard bin b in the six-bin protocol
                return _as_mask_tensor(bin_stroke_mask(size, b, rng, 0 if j % 2 == 0 else size // 16))

            return get

        groups = [(labels[k], n_images, generated(k)) for k in range(len(bins))]
        return groups, {
            "kind": "generated",
            "generator": "bin_stroke_mask",
            "seed": seed,
            "margin": f"0 for even mask index, {size // 16} for odd",
            "per_bin": n_images,
            "preparation": f"drawn at {size}x{size}",
            "standard_bins_per_group": {labels[k]: covers[k] for k in range(len(bins))},
        }
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
        raise InpaintlabError(
            f"generated masks cover unions of the bins {HOLE_RATIO_BINS}; ({lo:g},{hi:g}] is not one: "
            "pass a mask folder to use other bins"
        )
    return inside


def _as_mask_tensor(mask: np.ndarray) -> Tensor:
    """(H,W) uint8 {0,1} from masks.py -> (1,H,W) float {0,1}."""
    return torch.from_numpy(np.asarray(mask) > 0).float()[None]


def _padded_forward(model: nn.Module, image: Tensor, mask: Tensor) -> Tensor:
    """model(image, mask).pred with H, W padded up to ``model.size_multiple`` (``pad_to_multiple``, the
    pipeline's rule) and cropped back."""
    h, w = image.shape[-2:]
    image, mask = pad_to_multiple(image, mask, contract_of(model).size_multiple)
    return model(image, mask).pred[..., :h, :w]


def evaluate(
    model: nn.Module, images: Dataset, masks: str | MaskFolder = "bins", *, out_dir: str | Path | None = None, **kwargs
) -> dict[str, Any]:
    """Run the protocol (module docstring) and return the report; rank 0 writes it to ``out_dir``.

    kwargs: those of ``evaluate_with_samples`` (metrics, bins, batch_size, device, max_images, grid_size, seed,
    progress, settings, feature_weights).
    """
    report, samples = evaluate_with_samples(model, images, masks, **kwargs)
    if out_dir is not None and rank_and_world()[0] == 0:
        write_report(report, out_dir, samples)
    return report


def row_settings(network: nn.Module, /, **source: str) -> dict[str, str]:
    """A report's settings naming where one row's model came from (``model=NAME``, or ``checkpoint=FILE`` and
    ``weights="ema" | "live"``) and, for shipped weights, the SHA-256 of the file scored: ``ship-continued``
    refuses to judge a candidate against a row of weights no longer shipped."""
    from .pretrained import attached_card

    shipped_sha = attached_card(network).get("weights", {}).get("sha256")
    return {**source, **({"weights_sha256": shipped_sha} if shipped_sha else {})}


def load_rows(
    sources: Sequence[tuple[str, str]], device: str = "cpu", weights: str = "ema"
) -> tuple[list[tuple[str, nn.Module]], dict[str, dict[str, str]]]:
    """``inpaintlab eval``'s rows: ([(label, model)], {label: ``row_settings``}) from ("model", NAME) and
    ("checkpoint", FILE or LABEL=FILE) sources; a checkpoint's ``weights`` generator ("ema" or "live").
    Repeated labels get the row's index appended."""
    from .checkpoint import load_model
    from .resolve import resolve_model

    models, settings = [], {}
    for kind, value in sources:
        label = value
        if kind == "checkpoint":
            named = "=" in value and not Path(value).exists()
            label, value = value.split("=", 1) if named else (Path(value).stem, value)
            model = load_model(value, device, ema=weights == "ema")
        else:
            model = resolve_model(value, device)
        label = label if label not in settings else f"{label}_{len(models)}"
        models.append((label, model))
        settings[label] = row_settings(model, **{kind: str(value)}, **({"weights": weights} if kind == "checkpoint" else {}))
    return models, settings


#: What ``inpaintlab eval`` reports unless told otherwise (and the ledger keeps): the pixel metrics, the detail
#: ratio of the fill and of the original, and the shares of that detail locked to the 2- and 8-pixel lattices.
DEFAULT_METRICS = ("l1", "psnr", "ssim", "detail", "detail_gt", "grid", "grid_gt", "lattice", "lattice_gt")


def evaluate_with_samples(
    model: nn.Module,
    images: Dataset,
    masks: str | MaskFolder = "bins",
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    bins: Sequence = HOLE_RATIO_BINS,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    max_images: int | None = None,
    grid_size: int = 8,
    seed: int = 0,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    feature_weights: Any = "pretrained",
) -> tuple[dict[str, Any], list[tuple[Tensor, Tensor, Tensor]]]:
    """``(report, samples)``: the protocol's report and its sample grid's columns (image (3,S,S), mask
    (1,S,S), composite (3,S,S)), which are the same images and masks for every model on the same inputs.

    Predictions are clamped to [0,1] before compositing. The sample grid (``grid_size`` pairs evenly
    spaced over the work list) comes from rank 0's share when distributed.

    images: dataset of ``Sample(image (3,S,S), ...)``; masks: MaskFolder or "bins"/"center"/"circles".
    feature_weights: LPIPS/FID weights, passed to ``MetricTracker`` ("pretrained", "random" or a mapping).
    Report: {"settings", "overall": {metric: value, "count": n}, "bins": {label: {...}} (empty bins left
    out), "per_image": [{"name", "ratio", "bin", "bin_label", "values"}]}.
    """
    from .version import __version__

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
            batch = mine[start : start + batch_size]
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
    columns = [
        {
            "name": n,
            "ratio": records.get(n, {}).get("ratio"),
            "bin_label": records.get(n, {}).get("bin_label"),
            "score": records.get(n, {}).get("values", {}).get(score),
        }
        for n in sample_names
    ]
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
    return report, samples


def dataset_preparation(images: Dataset) -> str:
    """How ``images`` (or the dataset a ``Subset`` wraps) brings each image to the evaluation size."""
    while isinstance(images, Subset):
        images = images.dataset
    prepare = getattr(images, "preparation", None)
    return prepare() if callable(prepare) else "not stated by the dataset (its images used as given)"


def evaluate_models(
    models: Sequence[tuple[str, nn.Module]],
    images: Dataset,
    masks: str | MaskFolder,
    out_dir: str | Path,
    *,
    title: str = "inpaintlab evaluation",
    settings: dict | None = None,
    model_settings: dict[str, dict] | None = None,
    **kwargs,
) -> list[dict[str, Any]]:
    """``evaluate`` each (label, model) into ``out_dir/<label>/`` and write the side-by-side comparison:
    ``out_dir/README.md`` (``compare`` tables + links) and ``out_dir/plot_<metric>.png`` (one line per model).

    settings: recorded for every model; model_settings: label -> extra settings (e.g. its checkpoint).
    kwargs go to ``evaluate_with_samples``. Rank 0 also writes ``out_dir/samples.png``: every model on the
    same images and masks.
    """
    labels = [label for label, _ in models]
    if len(set(labels)) != len(labels):
        raise InpaintlabError(f"model labels must be unique, got {labels}")
    out, writes = Path(out_dir), rank_and_world()[0] == 0
    reports, samples = [], []
    for label, model in models:
        own = {**(settings or {}), **(model_settings or {}).get(label, {}), "label": label}
        report, shown = evaluate_with_samples(model, images, masks, settings=own, **kwargs)
        if writes:
            write_report(report, out / label, shown)
        reports.append(report)
        samples.append(shown)
    if writes:
        write_comparison(reports, labels, out, title, samples)
    return reports


def demo_models() -> tuple[str, ...]:
    """The demo's rows: the shipped default model (when its weights are present), Telea, Navier-Stokes."""
    from .serve import default_models

    return default_models()


def run_demo(
    out_dir: str | Path = "runs/demo",
    models: Sequence[str] | None = None,
    *,
    size: int = 256,
    max_images: int | None = 12,
    metrics: Sequence[str] = ("l1", "psnr", "ssim", "detail", "detail_gt"),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Built-in test photos x generated masks in the six bins x ``models`` -> ``out_dir/README.md``.

    models: names with weights, classical names or checkpoint paths (None = ``demo_models()``). Returns
    the README path.
    max_images: that many test photos (evenly spaced over the built-in list, so every photo appears);
    12 keeps the two classical baselines at about a minute on 2 CPU cores.
    """
    from .data import build_dataset
    from .resolve import resolve_model

    images = build_dataset("builtin", split="test", size=size)
    if max_images is not None and max_images < len(images):  # spread the subset over all test photos
        images = Subset(images, np.linspace(0, len(images) - 1, max_images).round().astype(int).tolist())
    loaded = [
        (Path(spec).stem if str(spec).endswith(".safetensors") else spec, resolve_model(spec))
        for spec in (models or demo_models())
    ]
    evaluate_models(
        loaded,
        images,
        "bins",
        out_dir,
        title="inpaintlab demo",
        metrics=metrics,
        seed=seed,
        progress=progress,
        settings={"images_source": "builtin (test split)"},
    )
    return Path(out_dir) / "README.md"

"""The photos and masks a GPU run carries (``prepare-data``): a small, git-ignored copy of the split."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .report import _now


def prepare_data(
    out: str | Path,
    dataset: str | Path | None = None,
    split: str | Path | None = None,
    n_train: int = 600,
    n_heldout: int = 0,
    n_train_masks: int = 1000,
    masks_per_bin_small: int = 10,
    mask_size: int = 256,
) -> dict[str, Any]:
    """Copy a deterministic subset of the held-out split into ``out`` (git-ignored; it travels with ``carry``).

    The lists of ``inpaintlab split`` (``split`` folder, else made here from ``dataset``) are ordered by the
    SHA-256 of each file's "<folder>/<name>" and the first ``n_train`` training photos, ``n_heldout``
    held-out photos (0 = all), ``n_train_masks`` training masks and all held-out masks are copied; the
    held-out masks are binned (hole ratio at ``mask_size``) and ``masks_per_bin_small`` per bin form the
    quick list. Lists hold paths relative to ``out`` so the folder works wherever it lands:
    ``train_images.txt``, ``heldout_images.txt``, ``train_masks.txt``, ``heldout_masks.txt``,
    ``heldout_masks_small.txt``; ``manifest.json`` records the sources and counts.
    """
    from ..errors import InpaintlabError
    from ..masks import HOLE_RATIO_BINS, MaskFolder, ratio_bin
    from ..splits import make_split

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").is_file():
            raise InpaintlabError(f"{out} exists and is not a gpu_check data folder (no manifest.json); choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        if split is None:
            if dataset is None:
                raise InpaintlabError("give --dataset ROOT (a folder of image and mask folders) or --split DIR")
            make_split(dataset, tmp, size=mask_size, progress=False)
            split = tmp
        split = Path(split)
        lists = {
            k: [Path(p) for p in (split / f"{k}.txt").read_text().split("\n") if p.strip()]
            for k in ("train_images", "heldout_images", "train_masks", "heldout_masks")
        }
        summary = json.loads((split / "split.json").read_text()) if (split / "split.json").is_file() else {}
    order = lambda paths: sorted(paths, key=lambda p: hashlib.sha256(f"{p.parent.name}/{p.name}".encode()).hexdigest())  # noqa: E731
    chosen = {
        "train_images": order(lists["train_images"])[:n_train],
        "heldout_images": order(lists["heldout_images"])[: n_heldout or None],
        "train_masks": order(lists["train_masks"])[:n_train_masks],
        "heldout_masks": order(lists["heldout_masks"]),
    }
    folders = {
        "train_images": "train",
        "heldout_images": "heldout",
        "train_masks": "masks_train",
        "heldout_masks": "masks_heldout",
    }
    written: dict[str, list[str]] = {}
    total = 0
    for key, paths in chosen.items():
        (out / folders[key]).mkdir()
        written[key] = []
        for path in paths:
            relative = f"{folders[key]}/{path.parent.name}__{path.name}"
            shutil.copyfile(path, out / relative)
            total += (out / relative).stat().st_size
            written[key].append(relative)
        (out / f"{key}.txt").write_text("".join(line + "\n" for line in written[key]))
    held = MaskFolder(out / "heldout_masks.txt", mask_size)
    ratios = held.measure_ratios(progress=False)
    small = []
    for k in range(len(HOLE_RATIO_BINS)):
        small += [written["heldout_masks"][i] for i, r in enumerate(ratios) if ratio_bin(r) == k][:masks_per_bin_small]
    (out / "heldout_masks_small.txt").write_text("".join(line + "\n" for line in small))
    manifest = {
        "made": _now(),
        "source": str(dataset) if dataset else summary.get("root"),
        "split_settings": {k: summary.get(k) for k in ("image_fraction", "masks_per_bin", "mask_size")},
        "rule": "each list ordered by SHA-256 of '<folder>/<name>', first N taken",
        "counts": {**{k: len(v) for k, v in written.items()}, "heldout_masks_small": len(small)},
        "bytes": total,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest

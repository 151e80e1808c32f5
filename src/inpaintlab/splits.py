"""Deterministic training / held-out split of a folder of image folders and mask folders.

``make_split(root, out)`` writes plain file lists (absolute paths, one per line) that ``--set
data.root=LIST``, ``masks.source=LIST`` and ``inpaintlab eval --images LIST --masks LIST`` read:

- ``train_images.txt`` / ``heldout_images.txt``: in every image folder (a subfolder of ``root`` whose
  name does not start with "masks"), a file is held out when the first 8 bytes of
  SHA-256("<folder>/<file name>") read as an integer fall below ``image_fraction * 2**64``. The rule
  depends on nothing but the name, so adding files never moves an old file to the other side.
- ``train_masks.txt`` / ``heldout_masks.txt``: every mask folder (name starting with "masks") is binned
  by its measured hole ratio at ``size`` (``masks.HOLE_RATIO_BINS``, after a nearest resize, as the
  evaluation does); in each bin the ``masks_per_bin`` files with the smallest SHA-256 of their name are
  held out. Masks outside the six bins are training masks.
- ``split.json``: the settings and the counts per folder and per bin.

Nothing held out is trained on: the two lists of each kind are disjoint by construction (tested).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .data import IMAGE_EXTENSIONS
from .errors import InpaintlabError
from .masks import HOLE_RATIO_BINS, MaskFolder, bin_label, ratio_bin

DATA_ENV = "INPAINTLAB_DATA"  # where the CLI looks for the dataset root when none is given


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def is_held_out(folder: str, name: str, fraction: float) -> bool:
    """The image rule of the module docstring: True for about ``fraction`` of all (folder, name) pairs."""
    return _hash(f"{folder}/{name}") < fraction * 2**64


def make_split(
    root: str | Path,
    out: str | Path,
    image_fraction: float = 0.1,
    masks_per_bin: int = 200,
    size: int = 256,
    progress: bool = True,
) -> dict:
    """Write the four lists and ``split.json`` into ``out`` (see the module docstring); returns the summary."""
    root, out = Path(root).resolve(), Path(out)
    if not root.is_dir():
        raise InpaintlabError(
            f"dataset root {root} is not a folder; expected a folder of image and mask folders "
            f"(pass it on the command line or set ${DATA_ENV})"
        )
    if not 0 < image_fraction < 1 or masks_per_bin < 1:
        raise InpaintlabError(f"expected 0 < image_fraction < 1 and masks_per_bin >= 1, got {image_fraction}, {masks_per_bin}")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    image_dirs = [p for p in folders if not p.name.startswith("masks")]
    mask_dirs = [p for p in folders if p.name.startswith("masks")]
    if not image_dirs or not mask_dirs:
        raise InpaintlabError(
            f"{root} needs image folders and mask folders (names starting with 'masks'); found {[p.name for p in folders]}"
        )
    lists: dict[str, list[str]] = {"train_images": [], "heldout_images": [], "train_masks": [], "heldout_masks": []}
    summary: dict = {
        "root": str(root),
        "image_fraction": image_fraction,
        "masks_per_bin": masks_per_bin,
        "mask_size": size,
        "images": {},
        "masks": {},
    }
    for folder in image_dirs:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        held = [p for p in files if is_held_out(folder.name, p.name, image_fraction)]
        held_set = set(held)
        lists["heldout_images"] += [str(p) for p in held]
        lists["train_images"] += [str(p) for p in files if p not in held_set]
        summary["images"][folder.name] = {"train": len(files) - len(held), "heldout": len(held)}
    for folder in mask_dirs:
        masks = MaskFolder(folder, size)
        ratios = masks.measure_ratios(progress=progress)
        bins = np.array([-1 if ratio_bin(r) is None else ratio_bin(r) for r in ratios])
        per_bin = {}
        held_masks: set[int] = set()
        for k in range(len(HOLE_RATIO_BINS)):
            members = sorted(np.flatnonzero(bins == k).tolist(), key=lambda i: _hash(masks.files[i].name))
            held_masks.update(members[:masks_per_bin])
            per_bin[bin_label(k)] = {"train": max(0, len(members) - masks_per_bin), "heldout": min(len(members), masks_per_bin)}
        lists["heldout_masks"] += [str(masks.files[i]) for i in sorted(held_masks)]
        lists["train_masks"] += [str(p) for i, p in enumerate(masks.files) if i not in held_masks]
        summary["masks"][folder.name] = {"per_bin": per_bin, "outside_bins_train": int(np.count_nonzero(bins < 0))}
    out.mkdir(parents=True, exist_ok=True)
    for name, paths in lists.items():
        (out / f"{name}.txt").write_text("".join(p + "\n" for p in paths))
        summary[name] = len(paths)
    (out / "split.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["DATA_ENV", "is_held_out", "make_split"]

"""Hole masks: seeded generators, the binned synthetic test set and folders of real masks.

Conventions (DESIGN.md): arrays are ``(H,W)`` uint8 in {0,1}, tensors ``(1,H,W)`` float in {0,1}, and
**1 = hole**. On disk a mask is an 8-bit PNG with white (>127) = hole. Every generator takes an explicit
``np.random.Generator``; drawing uses OpenCV (8-connected lines, round caps).

Generators (lengths are stated at 256x256 and scaled by ``size/256`` so a mask drawn at 512 and
nearest-resized to 256 looks like one drawn at 256; at 256 they are the published values):

* ``deepfill_strokes``: DeepFill v2 free-form brush strokes (implementation-notes section 4.3).
* ``bin_stroke_mask``: section 4.5 -- choose a target ratio t ~ U(lo, hi), grow DeepFill strokes one at a
  time on the inner canvas until the ratio over the whole image is >= t, restart if it overshoots hi.
* ``random_box``: DeepFill v2 ``bbox2mask`` (a size/2 box, opposite sides shrunk alike by up to size/16).
* ``center_square``, ``lgnet_circles``: the regular masks of LGNet Fig. 5.
* ``pennet_square``: PEN-Net's training square (randomly placed, flipped, rotated, dilated).
* ``qd_imd_strokes``: QD-IMD-like hand-drawn strokes (section 4.2; synthetic curves, see its docstring).
* ``build_mask_source("mixed")``: LaMa-like mixture (section 4.4), recipe in ``_lama_mixed``.
"""

from __future__ import annotations

import csv
import math
import re
from functools import partial
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter
from tqdm import tqdm

from .errors import InpaintlabError

HOLE_RATIO_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6),
)  # fmt: skip
MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
REFERENCE_SIZE = 256
SYNTHETIC_SET_MARKER = "inpaintlab synthetic test masks"
_MASK_FILE = re.compile(r"^\d{5}\.png$")
_SPECS = "strokes, bins:<k,...> (k in 0..5), deepfill, qd_imd, box, center, pennet_square, circles, mixed, or a folder path"


# ------------------------------------------------------------------------------------------ ratio bins


BIN_SETS = {
    "nvidia": HOLE_RATIO_BINS,
    "cicm": ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6)),  # CICM's three groups
    "msanet": ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6)),  # the bins MSA-Net's tables report
}


def parse_bins(text: str) -> tuple[tuple[float, float], ...]:
    """Hole-ratio bins from a name in ``BIN_SETS`` or "lo-hi,lo-hi,..." (e.g. "0-0.2,0.2-0.4").

    The one parser of bin texts; ``parse_bin_indices`` reads the mask-source form ("bins:0,1").
    """
    if text in BIN_SETS:
        return BIN_SETS[text]
    try:
        bins = tuple(tuple(float(v) for v in part.split("-")) for part in text.split(","))
    except ValueError:
        bins = ()
    if not bins or any(len(b) != 2 or not 0 <= b[0] < b[1] <= 1 for b in bins):
        raise InpaintlabError(f"bad --bins {text!r}; expected one of {', '.join(BIN_SETS)} or lo-hi pairs like 0-0.2,0.2-0.4")
    return bins


def bin_label(k: int, bins: Sequence[tuple[float, float]] = HOLE_RATIO_BINS) -> str:
    """Label of bin ``k`` of ``bins`` as used for JSON/CSV keys, e.g. ``"(0.01,0.1]"``."""
    lo, hi = _bin_bounds(k, bins)
    return f"({lo:g},{hi:g}]"


def ratio_bin(ratio: float, bins: Sequence[tuple[float, float]] = HOLE_RATIO_BINS) -> int | None:
    """Index of the bin (lo, hi] of ``bins`` holding ``ratio``, or None when it lies outside all of them."""
    for k, (lo, hi) in enumerate(bins):
        if lo < ratio <= hi:
            return k
    return None


def hole_ratio(mask) -> float:
    """Fraction of hole pixels (> 0.5) of a (1,H,W) or (H,W) tensor or array."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.size == 0:
        raise InpaintlabError(f"hole_ratio expects a (1,H,W) or (H,W) mask, got shape {tuple(array.shape)}")
    return np.count_nonzero(array > 0.5) / array.size


def _bin_bounds(k: int, bins: Sequence[tuple[float, float]] = HOLE_RATIO_BINS) -> tuple[float, float]:
    if not 0 <= k < len(bins):
        raise InpaintlabError(f"hole-ratio bin index {k} is out of range; expected 0..{len(bins) - 1}")
    return bins[k]


# ------------------------------------------------------------------------------------------ generators


def _deepfill_stroke(canvas: np.ndarray, rng: np.random.Generator, width_scale: float) -> None:
    """Draw one DeepFill-v2 brush stroke into ``canvas`` (h,w) uint8, in place.

    4-11 vertices; turning angles U(2pi/5 - a, 2pi/5 + b), a, b ~ U(0, 2pi/15), 2pi - angle on even
    vertices; segment length N(r, r/2) clipped to [0, 2r], r = hypot(h, w)/8; width U(12, 40) x width_scale;
    filled circles at the vertices.
    """
    h, w = canvas.shape
    mean_radius = math.hypot(h, w) / 8
    n_vertex = int(rng.integers(4, 12))
    angle_range = 2 * math.pi / 15
    angle_lo = 2 * math.pi / 5 - rng.uniform(0, angle_range)
    angle_hi = 2 * math.pi / 5 + rng.uniform(0, angle_range)
    angles = rng.uniform(angle_lo, angle_hi, size=n_vertex)
    angles[::2] = 2 * math.pi - angles[::2]
    lengths = np.clip(rng.normal(mean_radius, mean_radius / 2, size=n_vertex), 0, 2 * mean_radius)
    x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
    vertices = [(x, y)]
    for angle, length in zip(angles, lengths):
        x = int(np.clip(x + length * math.cos(angle), 0, w))
        y = int(np.clip(y + length * math.sin(angle), 0, h))
        vertices.append((x, y))
    width = max(1, int(rng.uniform(12, 40) * width_scale))
    cv2.polylines(canvas, [np.array(vertices, np.int32)], False, 1, thickness=width)
    for vertex in vertices:
        cv2.circle(canvas, vertex, width // 2, 1, thickness=-1)


def deepfill_strokes(size: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2 free-form mask: 1-3 brush strokes (``_deepfill_stroke``). Returns (size,size) uint8."""
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        _deepfill_stroke(mask, rng, size / REFERENCE_SIZE)
    return mask


def bin_stroke_mask(
    size: int, bin_index: int, rng: np.random.Generator, margin: int = 0, max_restarts: int = 10_000
) -> np.ndarray:
    """A (size,size) uint8 stroke mask whose hole ratio lies in ``HOLE_RATIO_BINS[bin_index]``.

    Section 4.5: t ~ U(lo, hi); add one DeepFill stroke at a time to an empty (size-2*margin)^2 canvas
    until the ratio over the whole size^2 image is >= t; accept if the ratio is in (lo, hi], else restart.
    The canvas is pasted in the middle, so a band of ``margin`` pixels at the border stays known.
    """
    lo, hi = _bin_bounds(bin_index)
    _check_stroke_canvas(size, margin, hi)
    inner = size - 2 * margin
    total = size * size
    for _ in range(max_restarts):
        target = rng.uniform(lo, hi)
        canvas = np.zeros((inner, inner), np.uint8)
        holes = 0
        while holes < target * total:
            _deepfill_stroke(canvas, rng, size / REFERENCE_SIZE)
            holes = cv2.countNonZero(canvas)
        if ratio_bin(holes / total) == bin_index:
            mask = np.zeros((size, size), np.uint8)
            mask[margin : margin + inner, margin : margin + inner] = canvas
            return mask
    raise InpaintlabError(f"no stroke mask of size {size} landed in bin {bin_label(bin_index)} in {max_restarts} tries")


def _check_stroke_canvas(size: int, margin: int, ratio: float) -> None:
    """Raise unless a (size-2*margin)^2 canvas can hold more than ``ratio`` of a size^2 mask."""
    inner = size - 2 * margin
    if margin < 0 or inner <= 0 or inner * inner <= ratio * size * size:
        raise InpaintlabError(
            f"margin {margin} leaves a {inner}x{inner} canvas in a {size}x{size} mask, too small for hole ratio "
            f"{ratio}; expected 0 <= margin with (size-2*margin)^2 > {ratio}*size^2"
        )


def object_mask(height: int, width: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """An object-shaped hole (a union of 3-5 overlapping ellipses, like a person, animal or sign to remove)
    covering ``ratio`` of an (height,width) image within 1 %, anywhere inside it: (height,width) uint8.

    The shape is drawn once in relative units, then scaled by bisection until its area matches ``ratio``.
    """
    if not 0 < ratio <= 0.6:
        raise InpaintlabError(f"object hole ratio must be in (0, 0.6], got {ratio}")
    parts = [
        (rng.uniform(-0.5, 0.5), rng.uniform(-0.7, 0.7), rng.uniform(0.35, 0.8), rng.uniform(0.5, 1.1), rng.uniform(0, 180))
        for _ in range(int(rng.integers(3, 6)))
    ]
    centre = (rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height)

    def draw(scale: float) -> np.ndarray:
        canvas = np.zeros((height, width), np.uint8)
        for dx, dy, ax, ay, angle in parts:
            c = (int(round(centre[0] + dx * scale)), int(round(centre[1] + dy * scale)))
            axes = (max(1, int(round(ax * scale))), max(1, int(round(ay * scale))))
            cv2.ellipse(canvas, c, axes, angle, 0, 360, 1, -1)
        return canvas

    lo, hi = 0.0, 2.0 * max(height, width)
    for _ in range(40):
        mid = (lo + hi) / 2
        if draw(mid).mean() < ratio:
            lo = mid
        else:
            hi = mid
    return draw(hi)


def random_box(
    size: int, rng: np.random.Generator, box: int | None = None, max_shrink: int | None = None, margin: int = 0
) -> np.ndarray:
    """DeepFill v2 box mask (``random_bbox`` + ``bbox2mask``). Returns (size,size) uint8.

    A ``box`` x ``box`` square (default size/2) at a uniform position at least ``margin`` from the border;
    top/bottom shrink by one draw of U{0..max_shrink}, left/right by another (default size/16).
    """
    box = size // 2 if box is None else box
    max_shrink = size // 16 if max_shrink is None else max_shrink
    if box < 1 or box + 2 * margin > size or not 0 <= 2 * max_shrink < box:
        raise InpaintlabError(f"box {box} with shrink {max_shrink} and margin {margin} does not fit a {size}x{size} mask")
    top, left = rng.integers(margin, size - margin - box + 1, size=2)
    shrink_h, shrink_w = rng.integers(0, max_shrink + 1, size=2)
    mask = np.zeros((size, size), np.uint8)
    mask[top + shrink_h : top + box - shrink_h, left + shrink_w : left + box - shrink_w] = 1
    return mask


def center_square(size: int = 256, side: int = 128) -> np.ndarray:
    """The centred ``side`` x ``side`` hole (LGNet Fig. 5: 128x128 at 256x256). Returns (size,size) uint8."""
    if not 0 < side <= size:
        raise InpaintlabError(f"center square side {side} must be in 1..{size}")
    mask = np.zeros((size, size), np.uint8)
    start = (size - side) // 2
    mask[start : start + side, start : start + side] = 1
    return mask


def pennet_square(size: int, rng: np.random.Generator, side: int | None = None, max_angle: int = 45) -> np.ndarray:
    """PEN-Net's training square (``core/dataset.py``, ``"mask": "square"``; every PEN-Net config). (size,size) uint8.

    A ``side`` x ``side`` square (default size/2: 128 at 256) with its top-left corner uniform in
    {0..size-side}^2, mirrored left-right with probability 1/2, rotated counter-clockwise by a uniform whole
    number of degrees in {0..max_angle} about the image centre with the canvas enlarged to hold the whole
    rotated image (PIL ``rotate(angle, expand=True)``, nearest), dilated by a 3x3 max filter, then
    nearest-resized back to size x size. So a rotated square also shrinks, by 1/(cos a + sin a), and always
    stays whole inside the image: hole ratio ((side + 2c) / (size c))^2 with c = cos a + sin a, 0.258 at 0
    degrees and 0.13 at 45 (mean 0.165 at 256 px).
    PEN-Net's test mask is the centred square (``center_square``); its ColorJitter on the image is not a mask.
    """
    side = size // 2 if side is None else side
    if not 0 < side <= size or not 0 <= max_angle <= 360:
        raise InpaintlabError(
            f"pennet_square needs 0 < side <= size ({size}) and 0 <= max_angle <= 360, got side {side}, max_angle {max_angle}"
        )
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 255
    if rng.random() < 0.5:
        mask = np.ascontiguousarray(mask[:, ::-1])
    rotated = Image.fromarray(mask).rotate(int(rng.integers(0, max_angle + 1)), expand=True)
    dilated = rotated.filter(ImageFilter.MaxFilter(3)).resize((size, size), Image.NEAREST)
    return (np.asarray(dilated) > 127).astype(np.uint8)


def lgnet_circles(size: int = 256, radii: tuple[int, ...] = (30, 30, 40, 40), together: bool = False) -> list[np.ndarray]:
    """LGNet Fig. 5 circle masks: radii 30, 30, 40, 40 px at 256x256 (scaled by size/256).

    The paper gives only the radii. Choice: circle i is centred in quadrant i (top-left, top-right,
    bottom-left, bottom-right) so the four are distinct; by default one mask per circle (four masks),
    ``together=True`` returns a single mask holding all four circles. Each mask is (size,size) uint8.
    """
    near, far = size // 4, 3 * size // 4
    centres = [(near, near), (far, near), (near, far), (far, far)]
    masks = []
    for (cx, cy), radius in zip(centres, radii):
        mask = np.zeros((size, size), np.uint8)
        cv2.circle(mask, (cx, cy), max(1, round(radius * size / REFERENCE_SIZE)), 1, thickness=-1)
        masks.append(mask)
    return [np.maximum.reduce(masks)] if together else masks


def qd_imd_strokes(size: int, rng: np.random.Generator) -> np.ndarray:
    """QD-IMD-like mask (section 4.2 parameters; never empty, as QD-IMD). Returns (size,size) uint8.

    QD-IMD draws single strokes of Quick Draw sketches, which are not available offline, so each stroke
    here is a smooth synthetic pen path instead: 8-40 points, step size/20, heading a random walk
    (N(0, 0.4) rad per step). Kept from QD-IMD: stroke count round(N(4, 2)) (at least 1), width U(5, 15)
    px at 512x512 (scaled by size/512), canvas then enlarged by U(1.0, 1.5) (nearest) and centre-cropped.
    """
    while True:
        canvas = np.zeros((size, size), np.uint8)
        for _ in range(max(1, int(round(rng.normal(4, 2))))):
            n_points = int(rng.integers(8, 41))
            headings = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.4, size=n_points))
            steps = (size / 20) * np.stack([np.cos(headings), np.sin(headings)], axis=1)
            path = rng.uniform(0, size, size=2) + np.cumsum(steps, axis=0)
            points = np.clip(path, 0, size - 1).round().astype(np.int32)
            width = max(1, int(round(rng.uniform(5, 15) * size / 512)))
            cv2.polylines(canvas, [points], False, 1, thickness=width)
        enlarged = int(round(size * rng.uniform(1.0, 1.5)))
        canvas = cv2.resize(canvas, (enlarged, enlarged), interpolation=cv2.INTER_NEAREST)
        start = (enlarged - size) // 2
        mask = np.ascontiguousarray(canvas[start : start + size, start : start + size])
        if mask.any():
            return mask


def _lama_irregular(size: int, rng: np.random.Generator) -> np.ndarray:
    """LaMa ``make_random_irregular_mask`` with the abl-04-256 training settings (section 4.4).

    1-5 strokes of 1-5 straight segments; angle 0.01 + U{0..3} rad (2pi - angle on even strokes); length
    10 + U{0..199}; width 5 + U{0..99} (lengths at 256, scaled by size/256).
    """
    scale = size / REFERENCE_SIZE
    mask = np.zeros((size, size), np.uint8)
    for stroke in range(int(rng.integers(1, 6))):
        x, y = int(rng.integers(size)), int(rng.integers(size))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(4))
            angle = 2 * math.pi - angle if stroke % 2 == 0 else angle
            length = (10 + int(rng.integers(200))) * scale
            width = max(1, round((5 + int(rng.integers(100))) * scale))
            end_x = int(np.clip(x + length * math.sin(angle), 0, size))
            end_y = int(np.clip(y + length * math.cos(angle), 0, size))
            cv2.line(mask, (x, y), (end_x, end_y), 1, thickness=width)
            x, y = end_x, end_y
    return mask


def _lama_boxes(size: int, rng: np.random.Generator) -> np.ndarray:
    """LaMa ``make_random_rectangle_mask``, abl-04-256 settings: 1-4 boxes of 30-149 px, 10 px margin (at 256)."""
    scale = size / REFERENCE_SIZE
    margin = round(10 * scale)
    low, high = max(1, round(30 * scale)), min(round(150 * scale), size - 2 * margin)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        box_w, box_h = rng.integers(low, max(low + 1, high), size=2)
        left = int(rng.integers(margin, max(margin + 1, size - margin - box_w + 1)))
        top = int(rng.integers(margin, max(margin + 1, size - margin - box_h + 1)))
        mask[top : top + box_h, left : left + box_w] = 1
    return mask


def _lama_mixed(size: int, rng: np.random.Generator) -> np.ndarray:
    """LaMa-like training mixture: irregular strokes or boxes with equal probability (abl-04-256-mh-dist)."""
    return _lama_irregular(size, rng) if rng.random() < 0.5 else _lama_boxes(size, rng)


# ------------------------------------------------------------------------------- synthetic test set


def test_mask_layout(per_bin: int) -> list[tuple[int, int, bool]]:
    """``(id, bin, with_margin)`` of every mask of the synthetic set, in id order.

    NVIDIA ids: bin k holds 2000k + j (with margin) and 2000k + 1000 + j (without), j < per_bin, so a
    smaller set is a subset of the full one and ``id % 2000 >= 1000`` means "no margin" as in the real set.
    """
    if not 1 <= per_bin <= 1000:
        raise InpaintlabError(f"per_bin must be in 1..1000 (the NVIDIA layout has 1000 per group), got {per_bin}")
    return [
        (2000 * k + offset + j, k, offset == 0)
        for k in range(len(HOLE_RATIO_BINS))
        for offset in (0, 1000)
        for j in range(per_bin)
    ]


def make_test_masks(
    out_dir, size: int = 256, per_bin: int = 1000, margin: int = 16, seed: int = 0, progress: bool = True
) -> Path:
    """Write the synthetic stand-in for the NVIDIA irregular test masks; returns the folder.

    Per bin, ``per_bin`` masks with a ``margin``-pixel known border band and ``per_bin`` without, made by
    ``bin_stroke_mask`` with ``np.random.default_rng([seed, id])`` (so files do not depend on per_bin or on
    generation order). Files: ``NNNNN.png`` (8-bit, 255 = hole), ``index.csv``
    (file,bin,bin_label,border_margin,hole_ratio) and ``README.txt``. A folder holding anything but a
    previous set is refused; files of a previous set that the new one does not rewrite are removed.
    """
    if size < 8 or seed < 0:
        raise InpaintlabError(f"size must be >= 8 and seed >= 0, got size {size}, seed {seed}")
    layout = test_mask_layout(per_bin)
    out = Path(out_dir)
    _prepare_mask_set_dir(out, {f"{mask_id:05d}.png" for mask_id, _, _ in layout})
    rows = []
    for mask_id, k, with_margin in tqdm(layout, desc="masks", unit="mask", disable=not progress):
        band = margin if with_margin else 0
        mask = bin_stroke_mask(size, k, np.random.default_rng([seed, mask_id]), margin=band)
        _, png = cv2.imencode(".png", mask * np.uint8(255))
        name = f"{mask_id:05d}.png"
        (out / name).write_bytes(png.tobytes())
        rows.append((name, k, bin_label(k), band, f"{hole_ratio(mask):.6f}"))
    with open(out / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "bin", "bin_label", "border_margin", "hole_ratio"))
        writer.writerows(rows)
    (out / "README.txt").write_text(
        f"{SYNTHETIC_SET_MARKER}\n\n"
        "These masks are SYNTHETIC stand-ins generated by inpaintlab.masks.make_test_masks. They are NOT the\n"
        "NVIDIA irregular mask test set (Liu et al. 2018); numbers measured on them are not comparable to\n"
        "published tables that used the NVIDIA masks.\n\n"
        f"size {size}x{size}, {per_bin} masks per bin and margin group, border margin {margin} px, seed {seed}.\n"
        "Layout as the NVIDIA set: bin k (hole ratio in (lo,hi], see index.csv) holds ids 2000k+j with the\n"
        "border margin and 2000k+1000+j without, j < per-bin. 8-bit PNG, white (255) = hole.\n"
        "Generator: DeepFill-v2 brush strokes grown one at a time to a target ratio t ~ U(lo,hi], restarted\n"
        "on overshoot; mask id i is drawn from numpy default_rng([seed, i]).\n"
    )
    return out


def _prepare_mask_set_dir(out: Path, new_files: set[str]) -> None:
    """Create ``out`` or check that it only holds a previous synthetic set; drop that set's stale masks."""
    if out.exists() and not out.is_dir():
        raise InpaintlabError(f"{out} is a file; expected a folder for the masks")
    out.mkdir(parents=True, exist_ok=True)
    entries = list(out.iterdir())
    if not entries:
        return
    own_names = ("index.csv", "README.txt")
    foreign = [p.name for p in entries if not (p.is_file() and (_MASK_FILE.match(p.name) or p.name in own_names))]
    readme = out / "README.txt"
    is_previous_set = readme.is_file() and readme.read_text(errors="replace").startswith(SYNTHETIC_SET_MARKER)
    if foreign or not is_previous_set:
        found = f"found {foreign[0]!r}" if foreign else "no inpaintlab README.txt"
        raise InpaintlabError(
            f"refusing to write masks into {out}: it is not empty and not a previous inpaintlab mask set "
            f"({found}); expected an empty or new folder"
        )
    for path in entries:
        if _MASK_FILE.match(path.name) and path.name not in new_files:
            path.unlink()


# -------------------------------------------------------------------------------------- mask folders


class MaskFolder:
    """Masks from a folder of image files (*.png, *.jpg, *.jpeg, *.bmp; sorted by name) or a ``.txt`` list
    of such files (one path per line, relative to the list's folder or absolute; ``#`` comments), white = hole.

    Each file is read on access, converted to grey, nearest-resized to size x size and binarised at >127.
    ``rotate90=True`` (MSA-Net's augmentation) makes the folder 4x longer: item ``r*n + i`` is file i
    rotated counter-clockwise by r*90 degrees (r = 0..3, n files).
    """

    def __init__(self, root, size: int = 256, rotate90: bool = False):
        self.root = Path(root)
        self.size = size
        self.rotate90 = rotate90
        if self.root.is_file() and self.root.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in self.root.read_text(encoding="utf-8").splitlines()]
            self.files = [self.root.parent / ln for ln in lines if ln and not ln.startswith("#")]
            missing = [p for p in self.files if not p.is_file()]
            if missing:
                raise InpaintlabError(f"mask list {self.root}: {len(missing)} listed file(s) missing, first {missing[0]}")
        elif self.root.is_dir():
            self.files = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES)
        else:
            raise InpaintlabError(
                f"mask folder {self.root} does not exist; expected a folder of mask images or a .txt list of mask files"
            )
        if not self.files:
            raise InpaintlabError(f"mask source {self.root} has no {'/'.join(MASK_SUFFIXES)} files; expected masks")
        self._ratios: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files) * (4 if self.rotate90 else 1)

    def array(self, i: int) -> np.ndarray:
        """Item ``i`` as a (size,size) uint8 {0,1} array."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"mask index {i} out of range for {len(self)} masks")
        turns, file_index = divmod(i % len(self), len(self.files))
        mask = self._read(self.files[file_index])
        return np.ascontiguousarray(np.rot90(mask, turns)) if turns else mask

    def __getitem__(self, i: int) -> torch.Tensor:
        """Item ``i`` as a (1,size,size) float tensor in {0,1}."""
        return torch.from_numpy(self.array(i).astype(np.float32))[None]

    def _read(self, path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                grey = image.convert("L")
        except (OSError, ValueError) as err:
            message = f"cannot read mask {path}: not a readable image ({err}); expected a PNG/JPEG/BMP file"
            raise InpaintlabError(message) from err
        if grey.size != (self.size, self.size):
            grey = grey.resize((self.size, self.size), Image.NEAREST)
        return (np.asarray(grey) > 127).astype(np.uint8)

    def measure_ratios(self, progress: bool = False) -> np.ndarray:
        """Hole ratio of every item (after resizing), shape (len,). Computed once, then cached."""
        if self._ratios is None:
            files = tqdm(self.files, desc="ratios", unit="mask", disable=not progress)
            per_file = np.array([hole_ratio(self._read(path)) for path in files])
            self._ratios = np.tile(per_file, 4) if self.rotate90 else per_file
        return self._ratios

    @property
    def ratios(self) -> np.ndarray:
        """Hole ratio of every item, (len,) float (see ``measure_ratios``)."""
        return self.measure_ratios()

    def indices_in_range(self, lo: float, hi: float) -> list[int]:
        """Items whose measured ratio lies in (lo, hi] (the evaluator's mask groups)."""
        return np.flatnonzero((self.ratios > lo) & (self.ratios <= hi)).tolist()

    def indices_in_bin(self, k: int) -> list[int]:
        """Items whose measured ratio lies in ``HOLE_RATIO_BINS[k]``."""
        return self.indices_in_range(*_bin_bounds(k))


def describe_ratios(ratios: np.ndarray) -> str:
    """A text table: count, mean, min and max hole ratio per bin, plus the count outside all bins."""
    ratios = np.asarray(ratios, dtype=float)
    bins = np.array([-1 if ratio_bin(r) is None else ratio_bin(r) for r in ratios], dtype=int)
    lines = [f"{'bin':<12}{'count':>7}{'mean':>9}{'min':>9}{'max':>9}"]
    for k in range(len(HOLE_RATIO_BINS)):
        chosen = ratios[bins == k]
        stats = f"{chosen.mean():9.4f}{chosen.min():9.4f}{chosen.max():9.4f}" if chosen.size else f"{'-':>9}" * 3
        lines.append(f"{bin_label(k):<12}{chosen.size:>7}{stats}")
    lines.append(f"{'outside':<12}{int(np.count_nonzero(bins < 0)):>7}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- mask sources


@runtime_checkable
class MaskSource(Protocol):
    """Draws one random mask: ``source(rng) -> (1,size,size)`` float tensor in {0,1}, 1 = hole."""

    size: int

    def __call__(self, rng: np.random.Generator) -> torch.Tensor: ...


class _DrawnMasks:
    """A ``MaskSource`` around ``draw(rng) -> (drawn,drawn) uint8``, then a random size x size window of it
    (when drawn > size), then border band, then rotation."""

    def __init__(
        self, spec: str, size: int, draw: Callable[[np.random.Generator], np.ndarray], margin: int, rotate90: bool, drawn: int
    ):
        self.spec, self.size, self.draw, self.margin, self.rotate90 = spec, size, draw, margin, rotate90
        self.drawn = drawn

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        mask = self.draw(rng)
        if self.drawn > self.size:
            mask = _hole_window(mask, self.size, rng)
        if self.margin:
            inner = mask[self.margin : -self.margin, self.margin : -self.margin].copy()
            mask = np.zeros_like(mask)
            mask[self.margin : -self.margin, self.margin : -self.margin] = inner
        if self.rotate90:
            mask = np.rot90(mask, int(rng.integers(4)))
        return torch.from_numpy(mask.astype(np.float32))[None]

    def __repr__(self) -> str:
        return f"MaskSource({self.spec!r}, size={self.size}, drawn={self.drawn}, margin={self.margin}, rotate90={self.rotate90})"


def _hole_window(mask: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size window of a larger (N,N) mask around a uniformly chosen hole pixel (so it always
    holds some hole; a mask without hole gives a uniformly placed, empty window)."""
    span = mask.shape[0] - size
    holes = np.flatnonzero(mask)
    if holes.size == 0:
        top, left = (int(v) for v in rng.integers(0, span + 1, 2))
    else:
        y, x = divmod(int(holes[rng.integers(holes.size)]), mask.shape[1])
        top = int(rng.integers(max(0, y - size + 1), min(y, span) + 1))
        left = int(rng.integers(max(0, x - size + 1), min(x, span) + 1))
    return np.ascontiguousarray(mask[top : top + size, left : left + size])


def build_mask_source(spec: str, size: int = 256, margin: int = 0, rotate90: bool = False, drawn_size: int = 0) -> MaskSource:
    """A ``MaskSource`` from a spec string (see ``_SPECS``); masks are (1,size,size) float.

    "strokes": a bin chosen uniformly from the six, then ``bin_stroke_mask``; "bins:0,1": only those
    bins; "deepfill": strokes OR box (DeepFill v2 training); "qd_imd"; "box"; "center"; "pennet_square" (PEN-Net's
    training squares, ``pennet_square``); "circles" (one
    of the four LGNet circles, uniformly); "mixed": LaMa-like (``_lama_mixed``); anything else is a
    folder (or ``.txt`` list) of masks, drawn uniformly. Specs joined by "|" draw from one part chosen uniformly per mask,
    e.g. "center|strokes" (SRPNet trains on centre squares and irregular holes). ``margin``: a border band of that many pixels is always known
    (built into the stroke bins, cleared afterwards for the others, real masks included).
    ``rotate90``: rotate each mask by a uniform multiple of 90 degrees (MSA-Net).
    ``drawn_size`` > size: masks are drawn (or read) at drawn_size and a random size x size window holding
    some hole is cut out, so training crops of native-scale images get holes of the test holes' scale
    (0 = drawn at ``size``).
    """
    if size < 8 or margin < 0 or 2 * margin >= size:
        raise InpaintlabError(f"mask size {size} / margin {margin} invalid; expected size >= 8, 0 <= 2*margin < size")
    if drawn_size and drawn_size < size:
        raise InpaintlabError(f"masks drawn at {drawn_size} px cannot be cropped to {size} px; expected drawn_size >= size or 0")
    drawn = max(drawn_size, size)
    return _DrawnMasks(spec, size, _drawer(spec, drawn, margin), margin, rotate90, drawn)


def _drawer(spec: str, size: int, margin: int) -> Callable[[np.random.Generator], np.ndarray]:
    """The function ``rng -> (size,size) uint8`` behind a spec; "a|b" picks one part uniformly per mask."""
    if "|" in spec:
        parts = [_drawer(part, size, margin) for part in spec.split("|")]
        return partial(_random_part, parts)
    if spec == "strokes" or spec.startswith("bins:"):
        bins = parse_bin_indices(spec)
        _check_stroke_canvas(size, margin, max(HOLE_RATIO_BINS[k][1] for k in bins))
        return partial(_random_bin_strokes, size, bins, margin)
    if spec in _GENERATORS:
        return partial(_GENERATORS[spec], size)
    if spec == "center":
        return partial(_random_item, [center_square(size, size // 2)])
    if spec == "circles":
        return partial(_random_item, lgnet_circles(size))
    if Path(spec).is_dir() or spec.endswith(".txt") or "/" in spec or "\\" in spec:
        return partial(_random_item, MaskFolder(spec, size))
    raise InpaintlabError(f"unknown mask source {spec!r}; expected one of {_SPECS}, or several joined by '|'")


def _random_part(parts: list, rng: np.random.Generator) -> np.ndarray:
    return parts[int(rng.integers(len(parts)))](rng)


def _deepfill_training(size: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2 training mask: ``deepfill_strokes`` OR ``random_box``, (size,size) uint8."""
    return np.maximum(deepfill_strokes(size, rng), random_box(size, rng))


_GENERATORS = {
    "deepfill": _deepfill_training,
    "qd_imd": qd_imd_strokes,
    "box": random_box,
    "mixed": _lama_mixed,
    "pennet_square": pennet_square,
}


def _random_bin_strokes(size: int, bins: list[int], margin: int, rng: np.random.Generator) -> np.ndarray:
    return bin_stroke_mask(size, bins[int(rng.integers(len(bins)))], rng, margin)


def _random_item(masks, rng: np.random.Generator) -> np.ndarray:
    """A uniformly chosen entry of a list of arrays or a ``MaskFolder`` (copied: callers may edit it)."""
    index = int(rng.integers(len(masks)))
    return masks.array(index) if isinstance(masks, MaskFolder) else masks[index].copy()


def parse_bin_indices(spec: str) -> list[int]:
    """Standard-bin indices of a mask-source spec: "strokes" (all six) or "bins:k,..."."""
    if spec == "strokes":
        return list(range(len(HOLE_RATIO_BINS)))
    try:
        bins = [int(part) for part in spec[len("bins:") :].split(",")]
    except ValueError:
        bins = []
    if not bins or any(not 0 <= k < len(HOLE_RATIO_BINS) for k in bins):
        raise InpaintlabError(f"bad mask source {spec!r}; expected bins:<k,...> with k in 0..5, e.g. bins:0,1")
    return bins

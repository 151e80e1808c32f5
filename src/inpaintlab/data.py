"""Image datasets that yield ``Sample(image (3,S,S) float [0,1], mask (1,S,S) {0,1}, name)``.

Sources: a folder (searched recursively), a ``.txt`` file list, a list of paths, in-memory arrays,
the real photos shipped with scikit-image / scikit-learn / matplotlib (``"builtin"``) or procedural
images (``"synthetic"``). Preprocessing follows the papers (``PREPROCESS_MODES``):

- ``resize``: bicubic resize of the whole image to S x S, aspect ratio not kept (LGNet's
  ``Resize((256,256), BICUBIC)``).
- ``face_crop``: centre crop to a square, then resize to S x S (MSA-Net CelebA). The paper says
  "resize the short side to 256, then crop the centre"; the official code crops first, then resizes.
  Both keep the same region; we follow the code. The code resized with ``scipy.misc.imresize``, whose
  default is bilinear: pass ``interpolation="bilinear"`` for that, the default stays bicubic so every
  mode resamples the same way.
- ``scene_crop``: resize so the short side is 350 (aspect ratio kept), then a random S x S crop
  (MSA-Net Places2 / Paris StreetView). For S != 256 the short side defaults to round(350 * S / 256)
  (same crop-to-image ratio as the paper); ``scene_short_side`` overrides it.
- ``crop``: a random S x S window at the image's own scale, no resizing (an image whose short side is below
  S is first enlarged to S). Trains a fully convolutional model on test-scale texture at a fraction of the
  cost of full images; pair it with ``MaskConfig.drawn_size`` so holes keep the test scale too.
- ``none``: the image must already be S x S.

Randomness: item ``i`` in epoch ``e`` draws everything from ``np.random.default_rng([seed, e, i])``,
spawned into one stream for geometry (crop, flip) and one for the mask, so a sample does not depend on
worker count or access order, and the mask does not change when crop/flip options change.
Extra training inputs (``EXTRA_INPUTS``): ``extra_inputs=("mask2",)`` puts in ``Sample.extras`` what a
model declares in ``training_inputs``; each kind has its own stream after those two (``mask2``, a second
mask from the same source, on the third), so asking for one changes nothing else. A new kind of input is
one entry of ``EXTRA_INPUTS`` and the model that declares it; batch such samples with ``collate_samples``.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from .errors import InpaintlabError
from .masks import MaskSource  # the one definition: source(rng) -> (1,size,size) float, 1 = hole
from .pipeline import exif_upright, wide_grey_to_rgb
from .types import Sample

PREPROCESS_MODES = ("resize", "face_crop", "scene_crop", "crop", "none")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
# what a damaged or foreign file makes PIL raise while opening or decoding it (truncated data: OSError;
# some plugins: EOFError, struct.error, IndexError...); never MemoryError or interrupts
_PIL_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
)
_SKIP_BAD_HINT = "set data.skip_bad=true (skip_bad=True) to leave unreadable images out"


# --------------------------------------------------------------------------------------------------
# Reading and preprocessing one image.


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an (H,W,3) uint8 RGB array.

    EXIF orientation is applied, transparency is composited on white, greyscale becomes RGB and 16-bit
    greyscale is scaled to 8 bits. A missing or unreadable file raises ``InpaintlabError`` naming it.
    """
    path = Path(path)
    try:
        with Image.open(path) as opened:
            return _to_rgb(exif_upright(opened, str(path)))
    except FileNotFoundError:
        raise InpaintlabError(f"image file not found: {path}") from None
    except _PIL_ERRORS as err:
        raise InpaintlabError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def _to_rgb(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H,W,3) uint8 RGB (alpha over white, 16-bit grey scaled by 1/257)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return wide_grey_to_rgb(image)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        alpha = rgba[:, :, 3:] / 255.0
        over_white = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(over_white), 0, 255).astype(np.uint8)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _resize(rgb: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """(H,W,3) uint8 -> (height,width,3) uint8 with PIL's antialiased bicubic/bilinear filter."""
    if rgb.shape[:2] == (height, width):
        return rgb
    resized = Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), _RESAMPLE[interpolation])
    return np.asarray(resized)


def _short_side_resize(rgb: np.ndarray, short: int, interpolation: str) -> np.ndarray:
    """Resize (H,W,3) so that min(H,W) == short, keeping the aspect ratio (long side rounded)."""
    h, w = rgb.shape[:2]
    if h <= w:
        return _resize(rgb, short, max(short, round(w * short / h)), interpolation)
    return _resize(rgb, max(short, round(h * short / w)), short, interpolation)


def jitter_colors(rgb: np.ndarray, strengths: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) uint8 -> (H,W,3) uint8 with random brightness, contrast, saturation and hue, in random order.

    strengths (b, c, s, h) as torchvision's ``ColorJitter`` reads them (PEN-Net trains with 0.05 each): factors
    uniform in [1-b, 1+b], [1-c, 1+c], [1-s, 1+s] (blends with black, with the grey mean, with the grey image)
    and a hue shift uniform in [-h, h] of a full turn; values clipped to [0, 255] after each step. A strength
    of 0 draws nothing, so the others' draws do not depend on it.
    """
    image = rgb.astype(np.float32)
    grey = lambda x: x @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731  (ITU-R 601-2 luma, as PIL's "L")
    steps = {
        0: lambda x, f: x * f,
        1: lambda x, f: x * f + grey(x).mean() * (1 - f),
        2: lambda x, f: x * f + grey(x)[..., None] * (1 - f),
        3: lambda x, f: _shift_hue(x, f),
    }
    for k in rng.permutation(4):
        if strengths[k] > 0:
            factor = rng.uniform(-strengths[k], strengths[k]) + (0.0 if k == 3 else 1.0)
            image = np.clip(steps[k](image, factor), 0, 255)
    return image.round().astype(np.uint8)


def _shift_hue(image: np.ndarray, turn: float) -> np.ndarray:
    """(H,W,3) float RGB in [0,255] with its hue rotated by ``turn`` of a full circle."""
    hsv = cv2.cvtColor(image / 255.0, cv2.COLOR_RGB2HSV)  # float input: H in degrees [0, 360)
    hsv[..., 0] = (hsv[..., 0] + 360.0 * turn) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def _preprocess(
    rgb: np.ndarray, name: str, size: int, mode: str, interpolation: str, scene_short_side: int, rng: np.random.Generator
) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3) uint8 following ``mode`` (see the module docstring)."""
    h, w = rgb.shape[:2]
    if mode == "resize":
        return _resize(rgb, size, size, interpolation)
    if mode == "face_crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return _resize(rgb[top : top + side, left : left + side], size, size, interpolation)
    if mode == "scene_crop":
        scaled = _short_side_resize(rgb, scene_short_side, interpolation)
        top = int(rng.integers(0, scaled.shape[0] - size + 1))
        left = int(rng.integers(0, scaled.shape[1] - size + 1))
        return scaled[top : top + size, left : left + size]
    if mode == "crop":
        if min(h, w) < size:
            rgb = _short_side_resize(rgb, size, interpolation)
        top = int(rng.integers(0, rgb.shape[0] - size + 1))
        left = int(rng.integers(0, rgb.shape[1] - size + 1))
        return rgb[top : top + size, left : left + size]
    if (h, w) != (size, size):
        raise InpaintlabError(
            f"image {name} is {w}x{h} but preprocess='none' needs {size}x{size}; "
            "use preprocess='resize', 'face_crop', 'scene_crop' or 'crop'"
        )
    return rgb


# --------------------------------------------------------------------------------------------------
# Datasets.


SMOOTH_STREAM = 1  # the fourth word of a smooth-item draw's seed: its stream is apart from the item's own


def smooth_version(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) uint8 -> (H,W,3) uint8: a smooth picture made from a crop, for training on what Telea fills best.

    Half the time the crop defocused (Gaussian blur, sigma 4-12 % of its side), else a linear gradient in a
    random direction between the colours of two of its pixels. Photos hold few such regions, and a network that
    never saw one draws texture into a clear sky (``promises.py``, the network alone on smooth backgrounds).
    """
    h, w = rgb.shape[:2]
    if rng.random() < 0.5:
        sigma = rng.uniform(0.04, 0.12) * max(h, w)
        return np.clip(np.rint(cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma)), 0, 255).astype(np.uint8)
    ends = rgb[rng.integers(0, h, 2), rng.integers(0, w, 2)].astype(np.float32)  # (2,3): two pixels' colours
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * np.cos(angle) / w + yy * np.sin(angle) / h
    t = ((t - t.min()) / max(float(t.max() - t.min()), 1e-6))[:, :, None]
    return np.clip(np.rint(ends[0] * (1 - t) + ends[1] * t), 0, 255).astype(np.uint8)


#: The extra training inputs the data path makes (``InpaintModel.training_inputs`` names them):
#: name -> fn(dataset, image (3,S,S) after crop and flip, the input's own rng) -> tensor. Order fixes each
#: one's random stream (append new kinds at the end so existing streams stay put).
EXTRA_INPUTS: dict[str, Callable[[_SampleDataset, Tensor, np.random.Generator], Tensor]] = {
    "mask2": lambda dataset, image, rng: dataset._mask(rng),  # a second independent mask (CSTFNet's siamese pair)
    "target": lambda dataset, image, rng: image,  # the ground truth, not the hole-zeroed input (CICM "difference")
}
TRAINING_INPUTS = frozenset(EXTRA_INPUTS)


class _SampleDataset(Dataset):
    """Shared ``Sample`` logic; subclasses provide ``__len__`` and ``_read(i) -> (rgb, name)``."""

    def __init__(
        self,
        size: int = 256,
        preprocess: str = "resize",
        flip: bool = False,
        mask_source: MaskSource | None = None,
        seed: int = 0,
        interpolation: str = "bicubic",
        scene_short_side: int | None = None,
        extra_inputs: Iterable[str] = (),
        color_jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        smooth_share: float = 0.0,
    ):
        if preprocess not in PREPROCESS_MODES:
            raise InpaintlabError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        if interpolation not in _RESAMPLE:
            raise InpaintlabError(f"interpolation must be one of {tuple(_RESAMPLE)}, got {interpolation!r}")
        if not isinstance(size, int) or size < 1:
            raise InpaintlabError(f"size must be a positive integer, got {size!r}")
        if not isinstance(seed, numbers.Integral) or seed < 0:
            raise InpaintlabError(f"seed must be a non-negative integer, got {seed!r}")
        self.scene_short_side = round(350 * size / 256) if scene_short_side is None else scene_short_side
        if self.scene_short_side < size:
            raise InpaintlabError(f"scene_short_side ({self.scene_short_side}) must be >= size ({size})")
        if mask_source is not None and not callable(mask_source):
            raise InpaintlabError(
                "mask_source must be a callable rng -> (1,size,size) mask, e.g. masks.build_mask_source(spec, size)"
            )
        self.size, self.preprocess, self.flip = size, preprocess, flip
        self.mask_source, self.seed, self.interpolation = mask_source, int(seed), interpolation
        self.color_jitter = tuple(float(v) for v in color_jitter)
        if len(self.color_jitter) != 4 or not all(0 <= v <= 1 for v in self.color_jitter) or self.color_jitter[3] > 0.5:
            raise InpaintlabError(
                f"color_jitter must be (brightness, contrast, saturation, hue) in [0, 1], hue <= 0.5, got {color_jitter!r}"
            )
        if not 0 <= smooth_share <= 1:
            raise InpaintlabError(f"smooth_share must be a share of the items in [0, 1], got {smooth_share!r}")
        self.smooth_share = float(smooth_share)
        self.extra_inputs = tuple(sorted(extra_inputs))
        unknown = [name for name in self.extra_inputs if name not in EXTRA_INPUTS]
        if unknown:
            raise InpaintlabError(
                f"unknown extra training input {unknown[0]!r}; the data path makes {', '.join(EXTRA_INPUTS)} (data.EXTRA_INPUTS)"
            )
        self.epoch = 0

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        """Subclass hook: the (H,W,3) uint8 RGB image ``index`` and its name."""
        raise NotImplementedError

    source_note: str = ""  # how the items themselves were made, when not read from files (``build_dataset``)

    def preparation(self) -> str:
        """One sentence: how each image is brought to ``size`` x ``size`` (reports quote it)."""
        s, how = self.size, f"{self.interpolation}, PIL antialiased"
        steps = {
            "resize": f"whole image resized to {s}x{s} ({how}; aspect ratio not kept)",
            "face_crop": f"centre square crop, resized to {s}x{s} ({how})",
            "scene_crop": f"short side resized to {self.scene_short_side} ({how}), then a seeded random {s}x{s} crop",
            "crop": f"a seeded random {s}x{s} window at the image's own scale (short side first enlarged to {s} "
            f"({how}) when smaller)",
            "none": f"used as stored (must be {s}x{s})",
        }
        flip = ", mirrored for about half the items" if self.flip else ""
        if self.source_note and self.preprocess != "scene_crop":  # items are made at size: the mode keeps them
            return f"{self.source_note} (already {s}x{s}: no further resizing){flip}"
        step = steps[self.preprocess] + flip
        return f"{self.source_note}; each then {step}" if self.source_note else step[0].upper() + step[1:]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops, flips and masks ``__getitem__`` returns."""
        if not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise InpaintlabError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Sample:
        """Sample(image (3,S,S) float32 [0,1], mask (1,S,S) float32 {0,1}, name, extras {name: tensor})."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        rgb, name = self._read(index)
        geometry_rng, mask_rng, *extra_rngs = np.random.default_rng([self.seed, self.epoch, index]).spawn(2 + len(EXTRA_INPUTS))
        rgb = _preprocess(rgb, name, self.size, self.preprocess, self.interpolation, self.scene_short_side, geometry_rng)
        if self.flip and geometry_rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        if any(self.color_jitter):  # drawn after crop and flip on the same stream: without it nothing changes
            rgb = jitter_colors(rgb, self.color_jitter, geometry_rng)
        if self.smooth_share:  # its own stream: the share changes nothing else an item draws
            smooth_rng = np.random.default_rng([self.seed, self.epoch, index, SMOOTH_STREAM])
            if smooth_rng.random() < self.smooth_share:
                rgb = smooth_version(rgb, smooth_rng)
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0)
        streams = dict(zip(EXTRA_INPUTS, extra_rngs))
        extras = {name: EXTRA_INPUTS[name](self, image, streams[name]) for name in self.extra_inputs}
        return Sample(image, self._mask(mask_rng), name, extras)

    def _mask(self, rng: np.random.Generator) -> Tensor:
        if self.mask_source is None:
            return torch.zeros(1, self.size, self.size)
        mask = self.mask_source(rng)
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (1, self.size, self.size):
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise InpaintlabError(f"mask_source returned {shape}; expected a (1,{self.size},{self.size}) tensor")
        return mask.float()


class ImageDataset(_SampleDataset):
    """Images from a folder (recursive, sorted), a ``.txt`` list (paths relative to the list's folder;
    blank lines and ``#`` comments ignored) or a list of paths.

    Names are paths relative to the folder, the list lines as written, or ``str(path)`` for a Python list.
    A file that cannot be opened and decoded (missing, zero bytes, truncated, not an image whatever its
    extension) raises ``InpaintlabError`` naming it and ``skip_bad`` when it is read. ``skip_bad=True``
    catches it at that point instead: the file is flagged and item i becomes the next readable file after
    it (i+1, i+2, ... wrapping; same crop/flip/mask streams as item i), so the length, the batches and an
    exact resume are unaffected. Flags live in shared memory, so files found bad in DataLoader workers are
    seen here too: ``newly_skipped()`` gives (path, reason) of each newly flagged file once,
    ``skipped_files()`` every flagged path.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        size: int = 256,
        preprocess: str = "resize",
        flip: bool = False,
        mask_source: MaskSource | None = None,
        seed: int = 0,
        skip_bad: bool = False,
        interpolation: str = "bicubic",
        scene_short_side: int | None = None,
        extra_inputs: Iterable[str] = (),
        color_jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        smooth_share: float = 0.0,
    ):
        super().__init__(
            size, preprocess, flip, mask_source, seed, interpolation, scene_short_side, extra_inputs, color_jitter, smooth_share
        )
        entries = _find_images(source)
        if not skip_bad:
            missing = [path for path, _ in entries if not path.is_file()]
            if missing:
                raise InpaintlabError(
                    f"image file not found: {missing[0]} ({len(missing)} listed files missing); fix the list or {_SKIP_BAD_HINT}"
                )
        self.source, self.skip_bad = source, skip_bad
        self.paths = [path for path, _ in entries]
        self.names = [name for _, name in entries]
        self._bad = torch.zeros(len(self.paths), dtype=torch.bool)
        if skip_bad:
            self._bad.share_memory_()
        self._reasons: dict[int, str] = {}  # found in this process
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        if not self.skip_bad:
            try:
                return load_image(self.paths[index]), self.names[index]
            except InpaintlabError as err:
                raise InpaintlabError(f"{err}; {_SKIP_BAD_HINT}") from err
        for offset in range(len(self.paths)):
            j = (index + offset) % len(self.paths)
            if self._bad[j]:
                continue
            try:
                return load_image(self.paths[j]), self.names[j]
            except InpaintlabError as err:
                self._bad[j] = True
                self._reasons[j] = str(err)
        raise InpaintlabError(
            f"no readable image in {self.source}: all {len(self.paths)} files fail to decode "
            f"(first: {self.paths[0]}: {self._reasons.get(0, 'unreadable')})"
        )

    def newly_skipped(self) -> list[tuple[Path, str]]:
        """(path, reason) of each file flagged bad since the last call (in any worker), each once."""
        if not self.skip_bad or len(self._reported) == int(self._bad.sum()):
            return []
        new = [j for j in self._bad.nonzero().flatten().tolist() if j not in self._reported]
        self._reported.update(new)
        return [(self.paths[j], self._reasons.get(j) or _decode_error(self.paths[j])) for j in new]

    def skipped_files(self) -> list[Path]:
        """Every file flagged bad so far (by this process or its DataLoader workers)."""
        return [self.paths[j] for j in self._bad.nonzero().flatten().tolist()]


class ArrayDataset(_SampleDataset):
    """The same ``Sample`` semantics over in-memory ``(name, (H,W,3) uint8 RGB)`` pairs."""

    def __init__(
        self,
        items: Sequence[tuple[str, np.ndarray]],
        size: int = 256,
        preprocess: str = "resize",
        flip: bool = False,
        mask_source: MaskSource | None = None,
        seed: int = 0,
        interpolation: str = "bicubic",
        scene_short_side: int | None = None,
        extra_inputs: Iterable[str] = (),
        color_jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        smooth_share: float = 0.0,
    ):
        super().__init__(
            size, preprocess, flip, mask_source, seed, interpolation, scene_short_side, extra_inputs, color_jitter, smooth_share
        )
        if not items:
            raise InpaintlabError("ArrayDataset needs at least one (name, array) item")
        for name, rgb in items:
            if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise InpaintlabError(
                    f"array {name!r} must be (H,W,3) uint8 RGB, got "
                    f"{getattr(rgb, 'shape', type(rgb))} {getattr(rgb, 'dtype', '')}"
                )
        self.names = [name for name, _ in items]
        self.arrays = [rgb for _, rgb in items]

    def __len__(self) -> int:
        return len(self.arrays)

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        return self.arrays[index], self.names[index]


def _walk_images(root: Path) -> list[Path]:
    """Image files under ``root``, following symlinked folders (a folder reached twice, as through a link
    to an ancestor, is walked once)."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        found += [Path(folder) / f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS and (Path(folder) / f).is_file()]
    return found


def _find_images(source: str | Path | Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(path, name) pairs from a folder, a ``.txt`` list or a list of paths (see ``ImageDataset``)."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise InpaintlabError("the list of image paths is empty")
        return [(Path(p), str(p)) for p in source]
    root = Path(source)
    if root.is_dir():
        found = sorted((p.relative_to(root).as_posix(), p) for p in _walk_images(root))
        if not found:
            raise InpaintlabError(f"no images found in {root} (looked recursively for {', '.join(IMAGE_EXTENSIONS)})")
        return [(path, name) for name, path in found]
    if root.is_file() and root.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in root.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        if not lines:
            raise InpaintlabError(f"the image list {root} names no files (one path per line expected)")
        return [(root.parent / ln, ln) for ln in lines]
    if root.exists():
        raise InpaintlabError(f"image source {root} must be a folder of images or a .txt list of paths")
    raise InpaintlabError(f"image source {root} does not exist (expected a folder of images or a .txt list)")


def _decode_error(path: Path) -> str:
    """Why ``path`` does not load (for a file a DataLoader worker flagged)."""
    try:
        load_image(path)
    except InpaintlabError as err:
        return str(err)
    return "failed to decode in a DataLoader worker (reads now)"


# --------------------------------------------------------------------------------------------------
# Built-in real photos and procedural images.

# (name, package, path inside the package, split). Read straight from the installed files: nothing is
# ever downloaded. Colour photos only; motorcycle_right is left out (same scene as motorcycle_left).
# The test photos cover an animal, food, a flower and a portrait, none of which occurs in train.
_BUILTIN_PHOTOS = (
    ("astronaut", "skimage", "data/astronaut.png", "train"),
    ("rocket", "skimage", "data/rocket.jpg", "train"),
    ("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", "train"),
    ("immunohistochemistry", "skimage", "data/ihc.png", "train"),
    ("retina", "skimage", "data/retina.jpg", "train"),
    ("motorcycle", "skimage", "data/motorcycle_left.png", "train"),
    ("china", "sklearn", "datasets/images/china.jpg", "train"),
    ("chelsea", "skimage", "data/chelsea.png", "test"),
    ("coffee", "skimage", "data/coffee.png", "test"),
    ("flower", "sklearn", "datasets/images/flower.jpg", "test"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "test"),
)
_CROP_SCALES = (1, 2)  # short side resized to size * scale
_MAX_UPSAMPLE = 4 / 3  # a scale is used only if it enlarges the photo by at most this factor


def builtin_photo_paths() -> dict[str, tuple[Path, str]]:
    """name -> (file, split) for each built-in photo whose package is installed and file present."""
    found = {}
    for name, package, relative, split in _BUILTIN_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        path = Path(spec.origin).parent / relative
        if path.is_file():
            found[name] = (path, split)
    return found


def builtin_images(split: str = "train", size: int = 256) -> list[tuple[str, np.ndarray]]:
    """Deterministic size x size crops of real photos: [(name, (size,size,3) uint8)].

    Each photo is resized (bicubic) so its short side is ``size * scale`` for scale 1 and 2, and cut
    into an evenly spaced grid of ceil(side / size) crops per axis. Names: ``photo_s{scale}_{row}_{col}``.
    The split is by photo (see ``_BUILTIN_PHOTOS``); photos of packages not installed are skipped.
    """
    if split not in ("train", "test"):
        raise InpaintlabError(f"builtin split must be 'train' or 'test', got {split!r}")
    crops = _builtin_crops(split, size)
    if not crops:
        raise InpaintlabError(f"no built-in photos found for split {split!r} (is scikit-image installed?)")
    return [(name, crop.copy()) for name, crop in crops]


@lru_cache(maxsize=4)
def _builtin_crops(split: str, size: int) -> tuple[tuple[str, np.ndarray], ...]:
    crops = []
    for photo, (path, photo_split) in builtin_photo_paths().items():
        if photo_split != split:
            continue
        rgb = load_image(path)
        for scale in _CROP_SCALES:
            short = size * scale
            if scale > 1 and short > min(rgb.shape[:2]) * _MAX_UPSAMPLE:
                continue
            scaled = _short_side_resize(rgb, short, "bicubic")
            rows = _grid_starts(scaled.shape[0], size)
            cols = _grid_starts(scaled.shape[1], size)
            for r, top in enumerate(rows):
                for c, left in enumerate(cols):
                    crop = np.ascontiguousarray(scaled[top : top + size, left : left + size])
                    crops.append((f"{photo}_s{scale}_{r}_{c}", crop))
    return tuple(crops)


def _grid_starts(length: int, size: int) -> list[int]:
    """ceil(length / size) crop offsets evenly spaced over [0, length - size]."""
    count = math.ceil(length / size)
    return [round(k * (length - size) / (count - 1)) for k in range(count)] if count > 1 else [0]


def synthetic_images(n: int, size: int, seed: int, first: int = 0) -> list[tuple[str, np.ndarray]]:
    """n procedural (size,size,3) uint8 images: a colour gradient, stripes, shapes, mild noise.

    Image k (k = first .. first+n-1) is drawn from ``default_rng([seed, k])``, named ``synthetic_{k:05d}``,
    so disjoint ``first`` ranges give disjoint sets.
    """
    if n < 1 or size < 8:
        raise InpaintlabError(f"synthetic images need n >= 1 and size >= 8, got n={n}, size={size}")
    return [(f"synthetic_{k:05d}", _synthetic_image(np.random.default_rng([seed, k]), size)) for k in range(first, first + n)]


def _synthetic_image(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[:, :, None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    start, end = rng.uniform(0, 255, (2, 3))
    canvas = start + (end - start) * ramp
    freq, phase, stripe_angle = rng.uniform(3, 12), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
    stripes = np.sin(2 * np.pi * freq * (np.cos(stripe_angle) * xx + np.sin(stripe_angle) * yy) + phase)
    canvas += rng.uniform(10, 40) * stripes[:, :, None]
    canvas = np.ascontiguousarray(np.clip(canvas, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = (int(v) for v in rng.integers(0, size, 2))
        rx, ry = (int(v) for v in rng.integers(size // 16, size // 4 + 1, 2))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (cx - rx, cy - ry), (cx + rx, cy + ry), colour, -1)
        else:
            cv2.ellipse(canvas, (cx, cy), (rx, ry), float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    noise = rng.normal(0, 3, canvas.shape)
    return np.clip(canvas + noise, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------------


def collate_samples(samples: Sequence[Sample]) -> Sample:
    """Batch ``Sample``s: image (B,3,S,S), mask (B,1,S,S), names as a list, each extra input stacked.

    Every sample must carry the same extra inputs.
    """
    kinds = {tuple(sorted(s.extras)) for s in samples}
    if len(kinds) > 1:
        raise InpaintlabError(f"collate_samples: the samples carry different extra inputs {sorted(kinds)}; build them alike")
    images, masks, names = default_collate([(s.image, s.mask, s.name) for s in samples])
    return Sample(images, masks, names, {name: torch.stack([s.extras[name] for s in samples]) for name in samples[0].extras})


def worker_errors_in_one_line(loader: Iterable) -> Iterator:
    """Iterate ``loader``; an ``InpaintlabError`` a DataLoader worker raised (torch re-raises it with the
    worker's traceback in the message) comes back as the original one-line message."""
    try:
        yield from loader
    except InpaintlabError as err:
        text = str(err).strip()
        if not text.startswith("Caught "):
            raise
        last = text.splitlines()[-1]
        raise InpaintlabError(last.split("InpaintlabError: ", 1)[-1]) from None


def build_dataset(
    root: str,
    split: str = "train",
    size: int = 256,
    preprocess: str = "resize",
    flip: bool = False,
    mask_source: MaskSource | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    interpolation: str = "bicubic",
    scene_short_side: int | None = None,
    extra_inputs: Iterable[str] = (),
    color_jitter: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
    smooth_share: float = 0.0,
) -> Dataset:
    """Dataset from a ``DataConfig``-style root: ``"builtin"`` (uses ``split``), ``"synthetic"`` /
    ``"synthetic:N"`` (N images, default 32; the test split uses the next N indices so it never
    overlaps train), a folder or a ``.txt`` list (``split`` is ignored: point at the split's folder).
    ``extra_inputs``: names from ``EXTRA_INPUTS`` each sample carries in ``Sample.extras`` (module docstring).
    ``color_jitter``: (brightness, contrast, saturation, hue) strengths of ``jitter_colors`` (0 = off).
    ``smooth_share``: the share of items replaced by ``smooth_version`` of themselves (0 = off).
    """
    common = dict(
        size=size,
        preprocess=preprocess,
        flip=flip,
        mask_source=mask_source,
        seed=seed,
        interpolation=interpolation,
        scene_short_side=scene_short_side,
        extra_inputs=extra_inputs,
        color_jitter=color_jitter,
        smooth_share=smooth_share,
    )
    if root == "builtin":
        dataset = ArrayDataset(builtin_images(split, size), **common)
        dataset.source_note = (
            f"Built-in photos: short side resized (bicubic) to {size} and {2 * size} px, cut into "
            f"an even grid of {size}x{size} crops"
        )
        return dataset
    if root == "synthetic" or root.startswith("synthetic:"):
        count_text = root.partition(":")[2] or "32"
        if not count_text.isdigit() or int(count_text) < 1:
            raise InpaintlabError(f"expected 'synthetic' or 'synthetic:N' with N >= 1, got {root!r}")
        if split not in ("train", "test"):
            raise InpaintlabError(f"synthetic split must be 'train' or 'test', got {split!r}")
        count = int(count_text)
        first = count if split == "test" else 0
        dataset = ArrayDataset(synthetic_images(count, size, seed, first=first), **common)
        dataset.source_note = f"Procedural images drawn at {size}x{size}"
        return dataset
    return ImageDataset(root, skip_bad=skip_bad, **common)


__all__ = [
    "EXTRA_INPUTS",
    "IMAGE_EXTENSIONS",
    "PREPROCESS_MODES",
    "TRAINING_INPUTS",
    "ArrayDataset",
    "ImageDataset",
    "build_dataset",
    "builtin_images",
    "collate_samples",
    "jitter_colors",
    "builtin_photo_paths",
    "load_image",
    "synthetic_images",
]

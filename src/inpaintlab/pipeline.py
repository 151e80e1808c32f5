"""Inference on real pictures: any-size RGB image + mask in, RGB image of the same size out.

>>> pipe = InpaintPipeline.from_pretrained()                  # the shipped default model
>>> pipe = InpaintPipeline.from_checkpoint("telea")            # a registered name or a checkpoint file
>>> result = pipe(Image.open("photo.jpg"), Image.open("hole.png"))   # PIL in -> PIL out (RGB, or L if grey)

Inputs are PIL images or uint8 arrays ((H,W), (H,W,3) or (H,W,4)); a mask is white (>127) = hole, or a
bool array (True = hole). The result has the input's size and every pixel outside the hole equals the
input's pixel exactly (the paste-back happens in uint8). The fill works on RGB; an input with alpha gets its
alpha channel back unchanged (RGBA out), hole pixels included. Four strategies fit a model to the picture:

``pad``     run at full resolution, reflect-padded up to the model's ``size_multiple``; the mask is padded
            the same way, so hole content mirrored into the border is treated as hole, never as context.
``resize``  work at a long side of at most ``max_side`` (default: the training size), run, upsample the
            composite bilinearly and paste back only the hole. A low-resolution pixel is a hole when any
            pixel it covers is (so no hole content leaks in as context through the averaging).
``crop``    one crop per hole region: connected components (8-connectivity) whose boxes are closer than
            ``merge_distance`` are merged, each box grows by ``crop_margin`` and at least to a square of the
            training size, the crop runs like ``resize`` at the training size, and only that region's
            hole pixels are pasted back.
``detail``  for photos larger than the model's size: each region of holes (grouped as for ``crop``) with
            context (``crop_margin``, at least a quarter of its box's side) runs like ``resize``, and the
            upsampled fill gets the photo's own full-resolution texture back (``detail.add_detail``:
            residuals of known cells that match the fill at low resolution, times ``detail_strength``;
            no hole pixel of any region is a source). Work grows with the regions' boxes, not the photo;
            a picture within ``max_side`` runs whole (as ``resize``) and a box within it at its own
            resolution: neither needs detail.

``pipe.batch(images, masks)`` runs many images in batches: work items (whole images or crops) with the
same working shape share one forward pass.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn

from .budget import check_budget
from .errors import InpaintlabError
from .pretrained import attached_card
from .types import composite, contract_of, pad_to_multiple

STRATEGIES = ("pad", "resize", "crop", "detail")
DEFAULT_TRAIN_SIZE = 256
DEFAULT_MAX_PIXELS = 100_000_000  # files and arrays given to the CLI and the pipeline (a server sets its own)
DEFAULT_DETAIL_STRENGTH = 1.0
ACCEPTED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP")  # MPO: what PIL calls many camera JPEGs

ImageLike = Union[Image.Image, np.ndarray]


class UnsupportedImageError(InpaintlabError):
    """The bytes are not an image of an accepted format (checked by content, not by name)."""


class ImageTooLargeError(InpaintlabError):
    """The image's header declares more pixels than allowed (checked before decoding)."""


def decode_image(data: bytes, what: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode untrusted bytes into a fully loaded PIL image, safely.

    The format comes from the content (PIL's magic-number sniffing, one of ``ACCEPTED_FORMATS``) and the
    pixel count from the header, checked BEFORE any pixel is decoded. Truncated or corrupt data raise
    ``InpaintlabError``; ``what`` names the input in the message ("image", "mask", a file name).
    An EXIF orientation is applied, so pixels are laid out as a browser shows them (and a mask painted
    there fits).
    """
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{what}: declares far too many pixels (limit {max_pixels:,})") from None
    except (OSError, SyntaxError, ValueError):
        raise UnsupportedImageError(f"{what}: not an image; expected one of {', '.join(ACCEPTED_FORMATS)}") from None
    if img.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(
            f"{what}: {img.format} images are not accepted; expected one of {', '.join(ACCEPTED_FORMATS)}"
        )
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{what}: {width}x{height} is {width * height:,} pixels; the limit is {max_pixels:,}")
    if width == 0 or height == 0:
        raise UnsupportedImageError(f"{what}: image has no pixels ({width}x{height})")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InpaintlabError(f"{what}: corrupt or truncated {img.format} data ({err})") from None
    return exif_upright(img, what)


def exif_upright(img: Image.Image, what: str = "image") -> Image.Image:
    """``img`` turned as its EXIF orientation says; malformed EXIF is ignored with a warning (the pixels are
    fine), never an exception."""
    try:
        return ImageOps.exif_transpose(img)
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, struct.error) as err:  # malformed EXIF
        # (an OSError is damaged pixel data, not EXIF: it propagates)
        warnings.warn(f"{what}: malformed EXIF ignored ({type(err).__name__}: {err}); orientation left as stored", stacklevel=2)
        return img


def read_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = 256 << 20) -> Image.Image:
    """``decode_image`` on a file, refusing files larger than ``max_bytes`` before reading them."""
    path = Path(path)
    if not path.is_file():
        raise InpaintlabError(f"{path}: no such file")
    if path.stat().st_size > max_bytes:
        raise ImageTooLargeError(f"{path}: file is {path.stat().st_size:,} bytes; the limit is {max_bytes:,}")
    return decode_image(path.read_bytes(), str(path), max_pixels)


GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


def is_greyscale(image: ImageLike) -> bool:
    """Whether a picture is greyscale by format (PIL grey modes, (H,W) or (H,W,1) arrays): its fill comes
    back grey too."""
    if isinstance(image, Image.Image):
        return image.mode in GREY_MODES
    return isinstance(image, np.ndarray) and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1))


def wide_grey_to_rgb(image: Image.Image) -> np.ndarray:
    """A 16- or 32-bit integer greyscale PIL image (modes I;16*, I) -> (H,W,3) uint8, scaled by 1/257 (for
    mode I only when its values exceed 255), never clipped to white."""
    grey = np.asarray(image).astype(np.float64)
    if image.mode != "I" or grey.max() > 255:
        grey = grey / 257.0
    grey8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """PIL image or uint8 array ((H,W), (H,W,1|3|4)) -> contiguous uint8 (H,W,3).

    16-bit and 32-bit integer greyscale (PIL modes I;16*, I) are scaled to 8 bits (by 1/257 when the values
    exceed 255), never clipped; float images (mode F) are refused, as PIL cannot say their range.
    """
    if isinstance(image, Image.Image):
        if image.mode.startswith("I;16") or image.mode == "I":
            return wide_grey_to_rgb(image)
        if image.mode == "F":
            raise InpaintlabError("32-bit float images (PIL mode F) are not supported; save the image as 8- or 16-bit")
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    arr = _uint8_array(image, "image")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InpaintlabError(f"image array must be (H,W), (H,W,3) or (H,W,4) uint8, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def alpha_channel(image: ImageLike) -> np.ndarray | None:
    """The (H,W) uint8 alpha of a PIL image with transparency or an (H,W,4) array; None when opaque by format."""
    if isinstance(image, Image.Image):
        if "A" in image.getbands() or "transparency" in image.info:
            return np.asarray(image.convert("RGBA"), dtype=np.uint8)[:, :, 3].copy()
        return None
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, 3])
    return None


def to_hole_array(mask: ImageLike) -> np.ndarray:
    """PIL image, bool array (True = hole) or uint8 array (>127 = hole) -> bool (H,W), True = hole.

    A mask with transparency (strokes on a transparent layer, as GIMP or Photoshop export them): where the
    colour says nothing (every pixel light, or every pixel dark) the opaque pixels (alpha > 127) are the
    hole; else a hole pixel must be both light and opaque.
    """
    if isinstance(mask, Image.Image):
        light = to_rgb_array(mask.convert("L") if mask.mode not in GREY_MODES[4:] else mask)[:, :, 0] > 127
        if "A" in mask.getbands() or "transparency" in mask.info:
            opaque = np.asarray(mask.convert("RGBA"))[:, :, 3] > 127
            if not opaque.all():
                return opaque if light.all() or not light.any() else light & opaque
        return light
    if isinstance(mask, np.ndarray) and mask.dtype == bool:
        arr = mask
    else:
        arr = _uint8_array(mask, "mask") > 127
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3].any(axis=2)
    if arr.ndim != 2:
        raise InpaintlabError(f"mask array must be (H,W) bool or uint8 (>127 = hole), got shape {arr.shape}")
    return arr


def _uint8_array(value: object, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise InpaintlabError(f"{what} must be a PIL image or a numpy uint8 array, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise InpaintlabError(f"{what} array must be uint8 (0..255), got {value.dtype}")
    return value


@dataclass
class _Job:
    """One forward pass worth of work: a box of one image, prepared at its working resolution.

    image (3,h,w) in [0,1] and hole (1,h,w) in {0,1} are padded to the model's multiple; ``size`` is the
    unpadded working (h, w); ``box`` = (top, left, height, width) in the original image; ``paste`` is the
    bool (height,width) set of original pixels this job fills. A ``detail`` job (made at a lower resolution
    than its box) adds the box's own full-resolution texture; ``window_hole`` (height,width) bool: every hole
    pixel in its box, its region's and others' (none of them is a source of texture).
    """

    index: int
    image: Tensor
    hole: Tensor
    size: tuple[int, int]
    box: tuple[int, int, int, int]
    paste: np.ndarray
    detail: bool = False
    window_hole: np.ndarray | None = None


class InpaintPipeline:
    """Wraps a generator (``forward(image, mask) -> InpaintOutput``) for pictures of any size.

    strategy: default strategy, one of ``STRATEGIES`` (see the module docstring); None = the one a shipped
      model's card names (chosen by measurement), else "pad".
    train_size: the model's training size (checkpoint header ``config.data.size``, else 256).
    max_side: long-side bound of ``resize`` (default: ``train_size``).
    crop_margin: context added around each hole box by ``crop`` (default ``train_size // 4``).
    merge_distance: hole boxes closer than this (pixels) share one crop (default ``crop_margin``).
    batch_size: work items per forward pass in ``batch``.
    smooth_threshold: a hole region whose surrounding known band (``SMOOTH_BAND`` pixels wide) changes by
      less than this many grey levels per pixel on average (flat colour, gradients, defocused backgrounds)
      is filled by Telea instead of the network, which is where Telea is at its best; None = a shipped
      model's card value, 0 = never. The other regions keep the network's fill.
    detail_strength: how much of the copied full-resolution residual ``detail`` adds (0 = plain upsampled
      fill; None = a shipped model's card value, else ``DEFAULT_DETAIL_STRENGTH``). seed: ``detail``'s draws.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cpu",
        strategy: str | None = None,
        train_size: int | None = None,
        max_side: int | None = None,
        crop_margin: int | None = None,
        merge_distance: int | None = None,
        batch_size: int = 8,
        smooth_threshold: float | None = None,
        detail_strength: float | None = None,
        seed: int = 0,
    ):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.strategy = _check_strategy(strategy or attached_card(model).get("default_strategy") or "pad")
        self.size_multiple = int(contract_of(model).size_multiple)
        self.train_size = int(train_size or _header_train_size(model) or DEFAULT_TRAIN_SIZE)
        self.max_side = int(max_side or self.train_size)
        self.crop_margin = self.train_size // 4 if crop_margin is None else int(crop_margin)
        self.merge_distance = self.crop_margin if merge_distance is None else int(merge_distance)
        self.batch_size = int(batch_size)
        self.smooth_threshold = attached_card(model).get("smooth_threshold") if smooth_threshold is None else smooth_threshold
        if detail_strength is None:
            detail_strength = attached_card(model).get("detail_strength", DEFAULT_DETAIL_STRENGTH)
        self.detail_strength, self.seed = float(detail_strength), int(seed)
        if min(self.size_multiple, self.train_size, self.max_side, self.batch_size) < 1 or self.crop_margin < 0:
            raise InpaintlabError("size_multiple, train_size, max_side and batch_size must be >= 1, crop_margin >= 0")

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | torch.device = "cpu", **kwargs) -> "InpaintPipeline":
        """Pipeline for a model with shipped weights; ``None`` = the shipped default (``pretrained.DEFAULT_MODEL``)."""
        from .models import create_model
        from .pretrained import DEFAULT_MODEL

        return cls(create_model(name or DEFAULT_MODEL, pretrained=True), device=device, **kwargs)

    @classmethod
    def from_checkpoint(cls, source: str | Path, device: str | torch.device = "cpu", **kwargs) -> "InpaintPipeline":
        """Pipeline for a checkpoint file, a classical method or a network with shipped weights
        (``inpaintlab models`` marks them). A network without weights is an error, never random output."""
        from .resolve import resolve_model

        return cls(resolve_model(source, device), device=device, **kwargs)

    def __call__(self, image: ImageLike, mask: ImageLike, strategy: str | None = None) -> ImageLike:
        """Inpaint one picture. Returns a PIL image for a PIL input (RGB; L for greyscale, 16-bit included,
        as 8-bit; with the input's alpha as RGBA / LA), else a uint8 (H,W,3) array."""
        return self.batch([image], [mask], strategy)[0]

    def batch(self, images: Sequence[ImageLike], masks: Sequence[ImageLike], strategy: str | None = None) -> list:
        """Inpaint many pictures; work items with one working shape share forward passes of ``batch_size``."""
        strategy = _check_strategy(strategy or self.strategy)
        if len(images) != len(masks):
            raise InpaintlabError(f"got {len(images)} images but {len(masks)} masks")
        pictures = [to_rgb_array(img) for img in images]
        holes = [to_hole_array(m) for m in masks]
        for pic, hole in zip(pictures, holes):
            if pic.shape[:2] != hole.shape:
                raise InpaintlabError(
                    f"mask is {hole.shape[1]}x{hole.shape[0]} but image is {pic.shape[1]}x{pic.shape[0]} (W x H); they must match"
                )
            if hole.all():
                raise InpaintlabError("mask marks every pixel as hole; at least some known pixels are needed")
        results = [pic.copy() for pic in pictures]
        jobs = []
        for index, (picture, hole) in enumerate(zip(pictures, holes)):
            check_budget()
            if hole.any():
                jobs += self._jobs(index, picture, hole, strategy)
        self._run(jobs, results)
        if self.smooth_threshold:
            for picture, hole, result in zip(pictures, holes, results):
                check_budget()
                fill_smooth_regions(picture, hole, result, self.smooth_threshold)
        out = []
        for image, hole, result in zip(images, holes, results):
            if is_greyscale(image):  # grey in, grey out: the fill's channel mean, no colour tint
                result = result.mean(axis=2).round().astype(np.uint8) if isinstance(image, Image.Image) else result
                if result.ndim == 3:
                    result[hole] = result[hole].mean(axis=1, keepdims=True).round().astype(np.uint8)
            alpha = alpha_channel(image)  # the input's alpha comes back untouched, hole pixels included
            if alpha is not None:
                result = np.dstack([result, alpha])
            out.append(Image.fromarray(result) if isinstance(image, Image.Image) else result)
        return out

    # ------------------------------------------------------------------------------------ planning

    def _jobs(self, index: int, picture: np.ndarray, hole: np.ndarray, strategy: str) -> list[_Job]:
        height, width = hole.shape
        if strategy == "pad":
            return [self._job(index, picture, hole, (0, 0, height, width), hole, None)]
        if strategy == "resize":
            return [self._job(index, picture, hole, (0, 0, height, width), hole, self.max_side)]
        if strategy == "detail" and max(height, width) <= self.max_side:  # fits the model: the whole picture
            return [self._job(index, picture, hole, (0, 0, height, width), hole, None)]
        jobs = []
        labels, regions = hole_regions(hole, self.merge_distance)
        for region in regions:  # crop and detail: one box per group of nearby holes
            if strategy == "detail":  # context a quarter of the box's side, the network at up to max_side
                y0, x0, y1, x1 = region.box
                margin = max(self.crop_margin, max(y1 - y0, x1 - x0) // 4)
                top, left, box_h, box_w = crop_box(region, hole.shape, margin, self.train_size)
                long_side = self.max_side
            else:
                top, left, box_h, box_w = crop_box(region, hole.shape, self.crop_margin, self.train_size)
                long_side = self.train_size
            window = (slice(top, top + box_h), slice(left, left + box_w))
            paste = np.isin(labels[window], region.ids)
            box = (top, left, box_h, box_w)
            job = self._job(index, picture[window], hole[window], box, paste, long_side)
            if strategy == "detail" and job.size != (box_h, box_w):
                job.detail, job.window_hole = True, hole[window]
            jobs.append(job)
        return jobs

    def _job(self, index, picture, hole, box, paste, long_side) -> _Job:
        image = torch.from_numpy(picture).permute(2, 0, 1).float().div(255)
        holes = torch.from_numpy(hole).float()[None]
        height, width = hole.shape
        if long_side is not None and max(height, width) > long_side:
            scale = long_side / max(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            image = F.interpolate(image[None], size=size, mode="area")[0]
            holes = (F.interpolate(holes[None], size=size, mode="area")[0] > 0).float()
        size = tuple(holes.shape[1:])
        image, holes = pad_to_multiple(image, holes, self.size_multiple)
        return _Job(index, image, holes, size, box, paste)

    # ----------------------------------------------------------------------------------- execution

    @torch.inference_mode()
    def _run(self, jobs: list[_Job], results: list[np.ndarray]) -> None:
        by_shape: dict[tuple, list[_Job]] = {}
        for job in jobs:
            by_shape.setdefault(tuple(job.image.shape), []).append(job)
        for group in by_shape.values():
            for start in range(0, len(group), self.batch_size):
                check_budget()
                chunk = group[start : start + self.batch_size]
                image = torch.stack([j.image for j in chunk]).to(self.device)
                hole = torch.stack([j.hole for j in chunk]).to(self.device)
                pred = self.model(image, hole).pred
                if not torch.isfinite(pred).all():
                    raise InpaintlabError(
                        f"model {type(contract_of(self.model)).__name__} answered with NaN or infinite values; its "
                        "weights are likely corrupt (nothing was written)"
                    )
                pred = pred.clamp(0, 1)
                filled = composite(pred, image, hole).float().cpu()
                for job, out in zip(chunk, filled):
                    check_budget()
                    _paste(job, out, results[job.index], self.detail_strength, self.seed)


def _paste(job: _Job, filled: Tensor, result: np.ndarray, detail_strength: float = 0.0, seed: int = 0) -> None:
    """Write ``job``'s hole pixels of ``filled`` (3,h_pad,w_pad) into ``result`` (H,W,3) uint8, upsampled
    bilinearly, or for a ``detail`` job with the full-resolution detail of ``result``'s own known pixels."""
    top, left, box_h, box_w = job.box
    filled = filled[:, : job.size[0], : job.size[1]]
    window = result[top : top + box_h, left : left + box_w]
    if job.detail:
        from .detail import add_detail

        coarse = filled.permute(1, 2, 0).numpy()
        full = add_detail(window.astype(np.float32) / 255, job.window_hole, coarse, detail_strength, seed)
        filled = torch.from_numpy(full).permute(2, 0, 1)
    elif job.size != (box_h, box_w):
        filled = F.interpolate(filled[None], size=(box_h, box_w), mode="bilinear", align_corners=False)[0]
    pixels = (filled.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    window[job.paste] = pixels[job.paste]


@dataclass
class HoleRegion:
    """A group of hole components: their label ids and joint box (y0, x0, y1, x1), end-exclusive."""

    ids: list[int]
    box: tuple[int, int, int, int]


def hole_regions(hole: np.ndarray, merge_distance: int) -> tuple[np.ndarray, list[HoleRegion]]:
    """Label the 8-connected components of ``hole`` (H,W) bool and group those that are close.

    Two groups merge while the gap between their boxes (Chebyshev, pixels) is <= ``merge_distance``.
    Returns ``(labels (H,W) int32, regions)``, regions in order of their first component; every hole pixel
    belongs to exactly one region. Near-linear in pixels and components: each round draws every group's
    box grown by ``merge_distance`` / 2 (a difference image and two cumulative sums) and takes the
    8-connected components of their union, until no two groups touch (a million holes: seconds).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    if count <= 1:
        return labels, []
    boxes = np.stack([stats[1:, 1], stats[1:, 0], stats[1:, 1] + stats[1:, 3], stats[1:, 0] + stats[1:, 2]], 1)
    group = np.arange(count - 1)  # component i+1 -> group id
    while True:
        ids, boxes = _merge_touching(boxes, hole.shape, merge_distance)
        group = ids[group]
        if len(boxes) == len(ids):
            break
    members = np.split(np.argsort(group, kind="stable") + 1, np.cumsum(np.bincount(group))[:-1])
    return labels, [HoleRegion(ids.tolist(), tuple(box.tolist())) for ids, box in zip(members, boxes)]


def _merge_touching(boxes: np.ndarray, shape: tuple[int, int], distance: int) -> tuple[np.ndarray, np.ndarray]:
    """One round of ``hole_regions``: (n,4) boxes (y0, x0, y1, x1) -> (group id of each box, (m,4) group boxes).

    Boxes grown by ``distance // 2`` before and ``distance - distance // 2`` after overlap or touch (which
    8-connectivity of their union sees) exactly when their gap is <= ``distance``.
    """
    before, after = distance // 2, distance - distance // 2
    grown = boxes + np.array([-before, -before, after, after]) + before  # canvas shifted by ``before``
    canvas = np.zeros((shape[0] + distance + 1, shape[1] + distance + 1), np.int32)
    for (y, x), sign in (((0, 1), 1), ((2, 3), 1), ((0, 3), -1), ((2, 1), -1)):
        np.add.at(canvas, (grown[:, y], grown[:, x]), sign)
    covered = canvas.cumsum(0).cumsum(1) > 0
    _, blobs = cv2.connectedComponents(covered.astype(np.uint8), connectivity=8)
    _, ids = np.unique(blobs[grown[:, 0], grown[:, 1]], return_inverse=True)  # ordered by first box
    merged = np.empty((ids.max() + 1, 4), boxes.dtype)
    merged[:, :2], merged[:, 2:] = np.iinfo(boxes.dtype).max, np.iinfo(boxes.dtype).min
    np.minimum.at(merged[:, 0], ids, boxes[:, 0])
    np.minimum.at(merged[:, 1], ids, boxes[:, 1])
    np.maximum.at(merged[:, 2], ids, boxes[:, 2])
    np.maximum.at(merged[:, 3], ids, boxes[:, 3])
    return ids, merged


SMOOTH_BAND = 8  # pixels of known context around a hole region that decide whether it is smooth


def _grey_change(picture: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H,W) float32: mean absolute grey-level change to the upper and left neighbours, counted only between
    two known pixels."""
    grey = picture.astype(np.float32).mean(axis=2)
    known = ~hole
    dy, dx = np.zeros_like(grey), np.zeros_like(grey)
    dy[1:] = np.abs(np.diff(grey, axis=0)) * (known[1:] & known[:-1])
    dx[:, 1:] = np.abs(np.diff(grey, axis=1)) * (known[:, 1:] & known[:, :-1])
    return (dx + dy) / 2


def _band_mean(change: np.ndarray, region: np.ndarray, hole: np.ndarray, band: int) -> float:
    """Mean of ``change`` over the known pixels within ``band`` pixels of ``region``; inf when there are none."""
    ring = cv2.dilate(region.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool) & ~hole
    return float(change[ring].mean()) if ring.any() else float("inf")


def band_gradient(picture: np.ndarray, region: np.ndarray, hole: np.ndarray, band: int = SMOOTH_BAND) -> float:
    """Mean absolute grey-level change per pixel (horizontal and vertical neighbours) of the known pixels
    within ``band`` pixels of ``region`` (H,W) bool; inf when no known pixel is that close."""
    return _band_mean(_grey_change(picture, hole), region, hole, band)


def fill_smooth_regions(picture: np.ndarray, hole: np.ndarray, result: np.ndarray, threshold: float) -> int:
    """Refill with Telea, in ``result`` (H,W,3) uint8, each 8-connected hole region whose known band is
    smoother than ``threshold`` (``band_gradient``). Returns how many regions were refilled.

    Linear in pixels, whatever the number of regions: one chessboard distance transform gives every known
    pixel within ``SMOOTH_BAND`` its nearest region (where two regions' bands overlap, the pixel counts for
    the nearer one), and each region's band mean is a weighted count.
    """
    rows, cols = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    if len(rows) == 0:
        return 0
    # work in the holes' box grown by the band (and Telea's radius): cost follows the holes, not the photo
    top, left = max(0, rows[0] - SMOOTH_BAND - 4), max(0, cols[0] - SMOOTH_BAND - 4)
    window = (slice(top, rows[-1] + SMOOTH_BAND + 5), slice(left, cols[-1] + SMOOTH_BAND + 5))
    picture, hole, result = picture[window], hole[window], result[window]
    count, labels = cv2.connectedComponents(hole.astype(np.uint8), connectivity=8)
    distance, nearest = cv2.distanceTransformWithLabels((~hole).astype(np.uint8), cv2.DIST_C, 3, labelType=cv2.DIST_LABEL_CCOMP)
    to_region = np.zeros(int(nearest.max()) + 1, np.int64)
    to_region[nearest[hole]] = labels[hole]
    band = ~hole & (distance <= SMOOTH_BAND)
    region_of = to_region[nearest[band]]
    change = _grey_change(picture, hole)[band]
    sums = np.bincount(region_of, weights=change, minlength=count)
    counts = np.bincount(region_of, minlength=count)
    means = np.divide(sums, counts, out=np.full(count, np.inf), where=counts > 0)
    smooth = np.nonzero(means[1:] < threshold)[0] + 1
    if len(smooth):
        telea = cv2.inpaint(np.ascontiguousarray(picture), hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
        refill = np.isin(labels, smooth)
        result[refill] = telea[refill]
    return len(smooth)


def crop_box(region: HoleRegion, shape: tuple[int, int], margin: int, min_side: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop for ``region``: its box + ``margin``, grown to a square of
    at least ``min_side``, centred on the box and shifted (then clipped) to lie inside ``shape``."""
    y0, x0, y1, x1 = region.box
    side = max(min_side, y1 - y0 + 2 * margin, x1 - x0 + 2 * margin)
    height, width = shape
    box_h, box_w = min(side, height), min(side, width)
    top = min(max((y0 + y1 - box_h) // 2, 0), height - box_h)
    left = min(max((x0 + x1 - box_w) // 2, 0), width - box_w)
    return int(top), int(left), int(box_h), int(box_w)


OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")


@dataclass
class FillReport:
    """What ``fill_paths`` did: files written, ``(input name, reason)`` for each pair it skipped, the hidden
    files of the image folder it left alone (names starting with "."), and the input it was working on when
    interrupted (Ctrl-C), if it was."""

    written: list[Path]
    failed: list[tuple[str, str]]
    interrupted: str | None = None
    hidden: list[str] = field(default_factory=list)


def _check_output(target: Path, inputs: set[tuple[int, int]], allow_lossy: bool, has_alpha: bool) -> None:
    """Refuse an output that would overwrite an input (by path, symlink or hard link) or silently change
    known pixels (a lossy format unless asked for; alpha in a format without it)."""
    if target.exists() and (target.stat().st_dev, target.stat().st_ino) in inputs:
        raise InpaintlabError(f"output {target} would overwrite an input (the same file, or a link to one); choose another -o")
    suffix = target.suffix.lower()
    if suffix in LOSSY_SUFFIXES and not allow_lossy:
        raise InpaintlabError(
            f"output {target}: {suffix} is lossy and changes pixels outside the hole too; write .png, or pass "
            "--allow-lossy to accept that"
        )
    if has_alpha and suffix in (".jpg", ".jpeg", ".bmp"):
        raise InpaintlabError(f"output {target}: the image has an alpha channel, which {suffix} cannot store; write .png")


def _save_atomically(image: Image.Image, target: Path, icc_profile: bytes | None) -> None:
    """Write ``image`` to a temporary file beside ``target`` and rename it into place: an interruption
    leaves the old file (or none), never a cut-off one. The input's ICC profile goes along."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial{target.suffix}")
    try:
        options = {"icc_profile": icc_profile} if icc_profile else {}
        image.save(temporary, format=Image.registered_extensions()[target.suffix.lower()], **options)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def fill_paths(
    pipe: InpaintPipeline,
    images: str | Path,
    masks: str | Path,
    out: str | Path,
    strategy: str | None = None,
    side_by_side: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_lossy: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> FillReport:
    """Inpaint an image file or folder with a mask file or folder, writing PNGs (the CLI's ``fill``).

    Folders pair by file stem (``photos/cat.jpg`` with ``masks/cat.png``); one mask file serves every
    image. ``out`` is a file when ``images`` is a file and ``out`` ends in an image suffix, else a folder
    receiving ``<stem>.png``. With ``side_by_side`` each output is image | mask | result. Pairs that fail
    (no mask, unreadable file, size mismatch, an output that would overwrite an input) are skipped and
    reported; inputs are never overwritten (not through a link either). Each output is written to a
    temporary file and renamed, keeps the input's ICC profile, and is PNG unless ``allow_lossy`` (JPEG and
    WebP change pixels outside the hole). Ctrl-C stops after cleaning up: the report names the files
    finished and the input interrupted. ``shard`` = (rank, world size): this process fills every world-th
    output name from the rank-th (sorted by stem, so inputs sharing a stem, and so an output, share a rank);
    under torchrun each output is written by exactly one rank. Shows a tqdm progress bar.
    """
    from tqdm import tqdm

    images, masks, out = Path(images), Path(masks), Path(out)
    for path in (images, masks):
        if not path.exists():
            raise InpaintlabError(f"{path}: no such file or folder")
    image_files, hidden = _listing(images) if images.is_dir() else ([images], [])
    rank, world = shard
    mine = set(sorted({p.stem for p in image_files})[rank::world])
    image_files = [p for p in image_files if p.stem in mine]
    mask_by_stem = _stems(masks) if masks.is_dir() else None
    mask_files = [p for found in mask_by_stem.values() for p in found] if mask_by_stem else [masks]
    inputs = {(p.stat().st_dev, p.stat().st_ino) for p in [*image_files, *mask_files]}
    single_file = images.is_file() and out.suffix.lower() in OUTPUT_SUFFIXES
    report = FillReport([], [], hidden=[p.name for p in hidden])
    for image_file in tqdm(image_files, desc="fill", unit="image"):
        target = out if single_file else out / f"{image_file.stem}.png"
        try:
            if target in report.written:
                raise InpaintlabError(f"output {target} was already written for another {image_file.stem}.* input")
            picture = read_image_file(image_file, max_pixels)
            _check_output(target, inputs, allow_lossy, alpha_channel(picture) is not None and not side_by_side)
            mask_file = masks if mask_by_stem is None else _mask_for(image_file, mask_by_stem, masks)
            hole = to_hole_array(read_image_file(mask_file, max_pixels))
            result = pipe(picture, hole, strategy=strategy)  # PIL, RGBA when the input has alpha
            if side_by_side:
                hole_rgb = np.repeat(hole[:, :, None], 3, axis=2).astype(np.uint8) * 255
                panels = [to_rgb_array(picture), hole_rgb, to_rgb_array(result)]
                result = Image.fromarray(np.concatenate(panels, axis=1))
            _save_atomically(result, target, picture.info.get("icc_profile"))
            report.written.append(target)
        except InpaintlabError as err:
            report.failed.append((image_file.name, str(err)))
        except OSError as err:  # the output could not be written: this file fails, the folder goes on
            report.failed.append((image_file.name, f"cannot write {target}: {err.strerror or err}"))
        except KeyboardInterrupt:
            report.interrupted = image_file.name
            break
    return report


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """(files, hidden files: names starting with ".", such as .DS_Store or macOS's ._photo.jpg) of ``folder``."""
    entries = sorted(p for p in folder.iterdir() if p.is_file())
    files = [p for p in entries if not p.name.startswith(".")]
    if not files:
        hidden = f" (only hidden ones: {', '.join(p.name for p in entries)})" if entries else ""
        raise InpaintlabError(f"{folder}: folder has no files{hidden}")
    return files, [p for p in entries if p.name.startswith(".")]


def _stems(folder: Path) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in _listing(folder)[0]:
        by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _mask_for(image_file: Path, mask_by_stem: dict[str, list[Path]], folder: Path) -> Path:
    found = mask_by_stem.get(image_file.stem, [])
    if len(found) != 1:
        what = "no mask" if not found else f"{len(found)} masks ({', '.join(p.name for p in found)})"
        raise InpaintlabError(f"{what} named {image_file.stem}.* in {folder}; expected exactly one")
    return found[0]


def _check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InpaintlabError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return strategy


def _header_train_size(model: nn.Module) -> int | None:
    """The side a model works at: a shipped card's ``inference_size``, else the checkpoint's training size."""
    header = contract_of(model).checkpoint_header or {}
    size = header.get("inference_size") or ((header.get("config") or {}).get("data") or {}).get("size")
    return int(size) if isinstance(size, int) and size > 0 else None


__all__ = [
    "ACCEPTED_FORMATS",
    "FillReport",
    "STRATEGIES",
    "HoleRegion",
    "ImageTooLargeError",
    "InpaintPipeline",
    "UnsupportedImageError",
    "alpha_channel",
    "band_gradient",
    "crop_box",
    "fill_smooth_regions",
    "decode_image",
    "fill_paths",
    "hole_regions",
    "is_greyscale",
    "read_image_file",
    "to_hole_array",
    "to_rgb_array",
]

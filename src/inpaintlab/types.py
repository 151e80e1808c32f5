"""Core value types shared by every stage: ``Sample``, ``InpaintOutput`` and ``composite``.

Conventions (see DESIGN.md): images are float tensors in [0, 1]; masks are float tensors in {0, 1}
with **1 = hole** (missing) and 0 = known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from torch import Tensor

from .errors import InpaintlabError


class Sample(NamedTuple):
    """One training/evaluation example.

    image: (3,H,W) in [0,1] (or (B,3,H,W) after collation); mask: (1,H,W) in {0,1}, 1 = hole.
    name: identifier of the source image (a list of names after collation).
    mask2: optional second, independent (1,H,W) mask of the same image (CSTFNet's siamese branch), or
    None. ``torch``'s ``default_collate`` cannot batch None: use ``data.collate_samples``.
    """

    image: Tensor
    mask: Tensor
    name: str = ""
    mask2: Tensor | None = None


@dataclass
class InpaintOutput:
    """What every generator returns.

    pred: (B,3,H,W) final prediction in [0,1] (not composited).
    stages: intermediate predictions (B,3,H,W) in [0,1], coarse first (e.g. LGNet: (coarse, local)).
    aux: model-specific named training terms (scalars or tensors), weighted by name in ``LossConfig``.
    """

    pred: Tensor
    stages: tuple[Tensor, ...] = ()
    aux: dict[str, Tensor] = field(default_factory=dict)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        """All predictions in order: ``(*stages, pred)``."""
        return (*self.stages, self.pred)


def composite(pred: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """Known pixels from ``image``, hole pixels from ``pred``: ``pred*mask + image*(1-mask)``.

    pred, image: (B,3,H,W); mask: (B,1,H,W) with 1 = hole.
    """
    return pred * mask + image * (1 - mask)


def check_image_mask(image: Tensor, mask: Tensor) -> None:
    """Validate the public-boundary shapes, raising ``InpaintlabError`` with a clear message.

    image: (B,3,H,W) floating point; mask: (B,1,H,W) floating point, same B, H, W.
    """
    if not isinstance(image, Tensor) or not isinstance(mask, Tensor):
        raise InpaintlabError("image and mask must be torch tensors: image (B,3,H,W), mask (B,1,H,W)")
    if image.ndim != 4 or image.shape[1] != 3:
        raise InpaintlabError(f"image must have shape (B,3,H,W), got {tuple(image.shape)}")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise InpaintlabError(f"mask must have shape (B,1,H,W) with 1 = hole, got {tuple(mask.shape)}")
    if image.shape[0] != mask.shape[0] or image.shape[2:] != mask.shape[2:]:
        raise InpaintlabError(
            f"image {tuple(image.shape)} and mask {tuple(mask.shape)} differ in batch size or H x W"
        )
    if not image.is_floating_point() or not mask.is_floating_point():
        raise InpaintlabError("image and mask must be floating point tensors (image in [0,1], mask in {0,1})")


def check_size_multiple(image: Tensor, multiple: int, model_name: str) -> None:
    """Raise ``InpaintlabError`` unless the (B,C,H,W) ``image`` has H and W divisible by ``multiple``."""
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        raise InpaintlabError(
            f"{model_name} needs H and W to be multiples of {multiple}, got {h}x{w} (not divisible by "
            f"{multiple}); pad or resize the input"
        )


def masked_input(image: Tensor, mask: Tensor) -> Tensor:
    """Zero the hole: (B,3,H,W) image with hole pixels set to 0. Every generator starts with this."""
    return image * (1 - mask)


__all__ = ["Sample", "InpaintOutput", "composite", "check_image_mask", "check_size_multiple", "masked_input"]

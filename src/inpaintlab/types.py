"""Core value types shared by every stage: ``Sample``, ``InpaintOutput`` and ``composite``.

Conventions (see DESIGN.md): images are float tensors in [0, 1]; masks are float tensors in {0, 1}
with **1 = hole** (missing) and 0 = known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .errors import InpaintlabError


class Sample(NamedTuple):
    """One training/evaluation example.

    image: (3,H,W) in [0,1] (or (B,3,H,W) after collation); mask: (1,H,W) in {0,1}, 1 = hole.
    name: identifier of the source image (a list of names after collation).
    extras: the extra training inputs the model declares (``InpaintModel.training_inputs``), by name, as the
    dataset made them (``data.EXTRA_INPUTS``: ``mask2`` (1,H,W), a second independent mask; ``target``
    (3,H,W), the ground truth); a leading batch dimension after ``data.collate_samples``.
    """

    image: Tensor
    mask: Tensor
    name: str = ""
    extras: Mapping[str, Tensor] = MappingProxyType({})


@dataclass
class InpaintOutput:
    """What every generator returns.

    pred: (B,3,H,W) final prediction in [0,1] (not composited).
    stages: intermediate predictions (B,3,H,W) in [0,1], coarse first (e.g. LGNet: (coarse, local)).
    aux: model-specific named training terms, weighted by name in ``LossConfig``: a scalar loss (kind
    ``SCALAR``) or a tuple of coarser-scale (B,3,h,w) images (kind ``PYRAMID``), as the model's
    ``aux_terms`` declares.
    """

    pred: Tensor
    stages: tuple[Tensor, ...] = ()
    aux: dict[str, Tensor | tuple[Tensor, ...]] = field(default_factory=dict)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        """All predictions in order: ``(*stages, pred)``."""
        return (*self.stages, self.pred)


SCALAR = "scalar"  # aux kind: a scalar loss term, weighted as is
PYRAMID = "pyramid"  # aux kind: a tuple of coarser-scale images, coarsest first, scored by ``pyramid_l1``
AUX_KINDS = (SCALAR, PYRAMID)


@dataclass(frozen=True)
class ModelSpec:
    """What the registry built: a registered ``name`` and the ``kwargs`` given to its factory.

    Checkpoints store it as the header's ``"model": {"name", "kwargs"}`` (``to_header``/``from_header``).
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_header(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_header(cls, header: Mapping[str, Any], where: str = "checkpoint") -> "ModelSpec":
        """Read a header's ``"model"`` entry (``{"name", "kwargs"}``, the layout every checkpoint has used)."""
        if not isinstance(header, Mapping) or not isinstance(header.get("name"), str):
            raise InpaintlabError(f'{where}: header names no model (expected "model": {{"name", "kwargs"}})')
        kwargs = header.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise InpaintlabError(f"{where}: model kwargs must be a mapping, got {type(kwargs).__name__}")
        return cls(header["name"], dict(kwargs))


class InpaintModel(nn.Module):
    """The generator contract, declared (DESIGN.md, Models). Every registered generator derives from it.

    ``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole, **extras) -> InpaintOutput``; the engine reads:
      ``size_multiple``   H and W must be multiples of it (the pipeline and evaluation pad).
      ``trainable``       False for classical fills: nothing to train.
      ``exportable``      whether ``export.py`` can trace it (False for OpenCV fills).
      ``training_inputs`` frozenset of the extra keyword inputs the model uses in training, each one the
                          data path knows how to make (``data.EXTRA_INPUTS``); the dataset puts exactly
                          these in ``Sample.extras`` and the trainer passes them on by name.
      ``aux_terms``       ``{name: kind}`` of the ``InpaintOutput.aux`` entries it returns in training mode
                          (kinds ``SCALAR``, ``PYRAMID``); loss weights are checked against it both ways.
      ``param_groups()``  named parameter groups (one optimiser each with ``separate_optimizers``).
      ``spec``            the registry's ``ModelSpec`` (None for a model built by hand).
      ``checkpoint_header`` the header of the checkpoint or shipped weights it was loaded from, or None.
      ``adopt_weights(source)`` start from a trained model of the same family built with other options
                          (``init_from="pretrained:NAME"`` when the run's options differ from the card's).
    Instance values (set in ``__init__``) override these class defaults where options change them.
    """

    size_multiple: int = 1
    trainable: bool = True
    exportable: bool = True
    training_inputs: frozenset[str] = frozenset()
    aux_terms: Mapping[str, str] = MappingProxyType({})
    spec: ModelSpec | None = None
    checkpoint_header: dict[str, Any] | None = None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.parameters())}

    def adopt_weights(self, source: "InpaintModel") -> None:
        """Take ``source``'s trained weights although it was built with other options; models that can map
        them override this."""
        raise InpaintlabError(
            f"{self.model_name} {self.model_kwargs} cannot start from weights built with other options "
            f"({source.model_name} {source.model_kwargs}); build it with the same options"
        )

    @property
    def model_name(self) -> str:
        return self.spec.name if self.spec is not None else type(self).__name__

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return dict(self.spec.kwargs) if self.spec is not None else {}


class InpaintDiscriminator(nn.Module):
    """The discriminator contract: ``forward(image, mask=None)`` -> logits map or a list of maps.

    ``takes_mask``: whether the loss passes the (B,1,H,W) mask (a local discriminator crops the hole with it).
    """

    takes_mask: bool = True

    def features(self, image: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """D's intermediate activations for ``image`` (B,3,H,W) in [0,1], shallow to deep (feature matching,
        pix2pixHD). A discriminator that exposes none raises ``InpaintlabError``."""
        raise InpaintlabError(
            f"discriminator {type(self).__name__} exposes no intermediate features; loss.feature_matching needs "
            "one that does (lgnet, lgnet_tiny)"
        )

    def judge(self, image: Tensor, mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """(logits maps, features) of ``image``: what ``forward`` (as a list) and ``features`` give, for a
        generator loss that needs both. This default makes two passes; a design that can make one overrides it."""
        logits = self(image, mask) if self.takes_mask else self(image)
        return (list(logits) if isinstance(logits, (list, tuple)) else [logits]), self.features(image, mask)


def contract_of(model: nn.Module) -> InpaintModel:
    """The ``InpaintModel`` behind ``model``, looking through DDP and ``torch.compile`` wrappers.

    Raises ``InpaintlabError`` for a module that does not declare the contract.
    """
    seen = model
    while not isinstance(model, InpaintModel):
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif isinstance(model, nn.Module) and "_orig_mod" in model._modules:  # torch.compile's OptimizedModule
            model = model._modules["_orig_mod"]
        else:
            raise InpaintlabError(
                f"{type(seen).__name__} does not declare the inpainting model contract: derive it from "
                "inpaintlab.types.InpaintModel (size_multiple, trainable, exportable, training_inputs, aux_terms)"
            )
    return model


def discriminator_contract(module: nn.Module) -> InpaintDiscriminator:
    """The ``InpaintDiscriminator`` behind ``module`` (DDP / compile looked through), else ``InpaintlabError``."""
    seen = module
    while not isinstance(module, InpaintDiscriminator):
        if isinstance(module, DistributedDataParallel):
            module = module.module
        elif isinstance(module, nn.Module) and "_orig_mod" in module._modules:
            module = module._modules["_orig_mod"]
        else:
            raise InpaintlabError(
                f"{type(seen).__name__} does not declare the discriminator contract: derive it "
                "from inpaintlab.types.InpaintDiscriminator (takes_mask)"
            )
    return module


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
        raise InpaintlabError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} differ in batch size or H x W")
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


def pad_to_multiple(image: Tensor, mask: Tensor, multiple: int) -> tuple[Tensor, Tensor]:
    """The one padding rule (pipeline and evaluation): pad at the bottom/right up to multiples of ``multiple``.

    image (3,h,w) or (B,3,h,w), mask (1,h,w) or (B,1,h,w), 1 = hole. Both are reflected together, so a
    hole that touches the border is mirrored and stays a hole, and known pixels mirror known pixels;
    replicate where the pad is not smaller than the side (reflect needs pad < size). Crop the model's
    output back with ``[..., :h, :w]``. Returns the padded pair.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image, mask
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    batched = image.ndim == 4
    both = torch.cat([image, mask.to(image.dtype)], dim=-3)
    both = F.pad(both if batched else both[None], (0, pad_w, 0, pad_h), mode=mode)
    both = both if batched else both[0]
    return both[..., :3, :, :], both[..., 3:, :, :].to(mask.dtype)


def masked_input(image: Tensor, mask: Tensor) -> Tensor:
    """Zero the hole: (B,3,H,W) image with hole pixels set to 0. Every generator starts with this."""
    return image * (1 - mask)


__all__ = [
    "Sample",
    "InpaintOutput",
    "InpaintModel",
    "InpaintDiscriminator",
    "ModelSpec",
    "SCALAR",
    "PYRAMID",
    "AUX_KINDS",
    "contract_of",
    "discriminator_contract",
    "composite",
    "pad_to_multiple",
    "check_image_mask",
    "check_size_multiple",
    "masked_input",
]

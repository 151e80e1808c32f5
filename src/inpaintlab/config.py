"""Typed, frozen run configuration with strict overrides and JSON/TOML round-trip.

A run is described by one ``TrainConfig`` made of nested frozen dataclasses. Presets (``presets.py``)
are Python values of it; the command line changes them with ``--set section.key=value``. Unknown keys
and values of the wrong type raise ``InpaintlabError`` naming the key and the expected type.
Every numeric field declares its valid range next to it (``_ranges``, a ``Range`` per field, applied to
each element of a tuple and each value of a dict); a value outside it is an ``InpaintlabError`` raised
when the config is built (``--set``, a file, a preset or plain Python): ``optim.lr: expected a number > 0,
got -1.0``.

>>> cfg = apply_overrides(TrainConfig(), ["optim.lr=1e-3", "model.name=lgnet_tiny"])
>>> cfg.optim.lr, cfg.model.name
(0.001, 'lgnet_tiny')
"""

from __future__ import annotations

import ast
import contextvars
import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from .errors import InpaintlabError

# --------------------------------------------------------------------------------------------------
# Valid ranges of numeric fields.


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric config field: ``lo``/``hi`` bounds (None = unbounded), each closed
    unless ``lo_open``/``hi_open``. Non-finite numbers are never valid."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return "finite"


AT_LEAST_0, AT_LEAST_1, ABOVE_0 = Range(0), Range(1), Range(0, lo_open=True)
FRACTION = Range(0, 1, hi_open=True)  # [0, 1): betas, EMA decay


# --------------------------------------------------------------------------------------------------
# Sections. Only ``presets.py`` fills them with a paper's numbers; defaults here are neutral.


@dataclass(frozen=True)
class ModelConfig:
    """Which generator/discriminator to build. Keys not named here go to the factory's kwargs.

    ``discriminator=None`` trains without an adversarial term (``loss.adversarial`` must then be 0).
    """

    name: str = "lgnet"
    kwargs: dict[str, Any] = field(default_factory=dict)
    discriminator: str | None = None
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Training/validation images (see ``data.py`` for the preprocessing modes).

    root: "builtin", "synthetic[:N]", a folder or a .txt file list; val_root None -> the "test" split of
    root ("builtin" has a photo-disjoint split). val_count: validation images (0 = no validation).
    color_jitter: (brightness, contrast, saturation, hue) strengths for training images (``data.jitter_colors``;
    PEN-Net 0.05 each); validation images are never jittered.
    smooth_share: share of training items replaced by a smooth version of their crop (``data.smooth_version``:
    defocused, or a two-colour gradient); 0 = the papers' data.
    """

    root: str = "builtin"
    val_root: str | None = None
    preprocess: str = "resize"
    size: int = 256
    flip: bool = True
    skip_bad: bool = False
    num_workers: int = 0
    val_count: int = 16
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    smooth_share: float = 0.0

    _ranges: ClassVar[dict[str, Range]] = {
        "size": Range(8), "num_workers": AT_LEAST_0, "val_count": AT_LEAST_0, "color_jitter": Range(0, 1),
        "smooth_share": Range(0, 1),
    }  # fmt: skip

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.color_jitter[3] > 0.5:
            raise InpaintlabError(
                f"data.color_jitter: the hue strength is a fraction of a turn <= 0.5, got {self.color_jitter[3]}"
            )


@dataclass(frozen=True)
class MaskConfig:
    """Where training/validation masks come from (a ``masks.build_mask_source`` spec or a folder of PNGs).

    val_bins: the (lo, hi] hole-ratio groups validation metrics are reported in; empty = the six
    standard bins of ``masks.HOLE_RATIO_BINS`` (CICM reports 0-20/20-40/40-60 %).
    drawn_size: training masks are drawn (or read) at this side and a random data.size window is cut out
    (pairs with ``data.preprocess="crop"``: holes at the test scale); 0 = drawn at data.size.
    Validation masks are always drawn at data.size.
    """

    source: str = "strokes"
    val_source: str = "strokes"
    margin: int = 0
    rotate90: bool = False
    drawn_size: int = 0  # 0 or >= data.size (checked by TrainConfig)
    val_bins: tuple[tuple[float, float], ...] = ()  # each (lo, hi) with 0 <= lo < hi <= 1

    _ranges: ClassVar[dict[str, Range]] = {"margin": AT_LEAST_0, "drawn_size": AT_LEAST_0, "val_bins": Range(0, 1)}

    def __post_init__(self) -> None:
        check_ranges(self)
        for lo, hi in self.val_bins:
            if not lo < hi:
                raise InpaintlabError(f"masks.val_bins: expected (lo, hi) pairs with lo < hi, got {self.val_bins!r}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights by name (0 switches a term off) and the choices the papers leave open.

    pixel_norm: how valid/hole terms are normalised: "region" = per image by the region's area (LGNet,
      CSTFNet), "all_pixels" = mean over every pixel (official MANet). pixel_distance: "l1" or "l2" (CICM).
    feature_outputs: indices into ``InpaintOutput.outputs`` that get perceptual/style/TV terms.
      feature_images: perceptual/style on "raw_and_composite" (official LGNet and MANet) or on the "raw"
      output only (CSTFNet Eqs. 18-19); TV is always on the composite. vgg_input: how [0,1] images are scaled for VGG16
      ("minus1_1" = official LGNet, "imagenet" = mean/std, "unit" = as is). vgg_layers: VGG16 taps
      (``features.VGG16_TAPS``). vgg_weights: None = the canonical file lookup of ``features.py``,
      "random" (results must say so) or a path.
    tv_region: "hole" = TV of composite*mask (official LGNet code), "composite" = TV of the composite
      (LGNet Eq. 6 as written). pixel_range: the value range the pixel (valid/hole/pyramid) and TV terms
      are computed in: "unit" = [0,1]; "minus1_1" = on 2x-1, as codes that train in [-1,1] do (official
      LGNet, PEN-Net), so their published weights keep their balance against perceptual/style/GAN.
    gan_mode: lsgan | hinge | nsgan (BCE on logits) | relativistic. adv_input: the image D judges:
      "first_composite" (composite of outputs[0]; official LGNet, notes 1.7), "final_composite",
      "final_raw" (MSA-Net), "first_raw" (outputs[0] itself: MSA-Net as the first stage of ``msanet_lg``) or
      "every_composite" (each output's composite, summed; CSTFNet).
    aux: weights of the model-specific terms in ``InpaintOutput.aux``, by name; a tuple-valued term
      (``"pyramid"``) is the pyramid L1 of those images, downsampling the target by ``pyramid_downsample``.
    feature_matching: weight of pix2pixHD's feature-matching term (Wang et al. 2018), a perceptual term
      that needs no pretrained network: the mean L1 between D's intermediate features of each image D
      judges (``adv_input``) and of the original, averaged over D's layers. None of the five papers uses
      it (0 = off).
    feature_style: weight of a style (Gram) term on the same features: mean |G(D_l(fake)) - G(D_l(real))|
      (``losses.gram_matrix``), averaged over D's layers; the texture statistics of a network trained
      alongside, for the VGG style term that needs pretrained weights (0 = off; none of the papers).
    detail_energy: weight of a texture-energy term on the final composite (``losses.detail_energy_loss``):
      the L1 between the local mean |Laplacian| of the composite and of the original at 2x and 4x
      average-pooled scales, over the hole. It asks for as much texture as the photo has where it has it,
      not for its exact phase, and pooling makes it blind to the 2-pixel grid of transposed convolutions
      (0 = off; none of the papers, needs no network). On LGNet at CPU budgets it buys the deeper layers'
      8-pixel dots instead (docs/results.md: the lattice share).
    spectrum: weight of a local amplitude-spectrum term on the final composite (``losses.spectrum_loss``):
      the L1 between log(1 + |FFT|) of the grey composite and of the original in 32x32 tiles, weighted by
      each tile's hole share. Phase-free like ``detail_energy``, but it also penalises what the photo's
      spectrum lacks, so a periodic grid (a peak) costs instead of counting as texture (0 = off; none of
      the papers, needs no network).
    lattice: weight of a penalty on the composite's pattern locked to the 8-pixel lattice beyond the original's
      (``losses.lattice_loss``; the training side of ``metrics.lattice_share``): the dots that texture terms
      pull out of a decoder's stride-2 layers cost their amplitude, so texture has to come from elsewhere
      (``hole_noise``) (0 = off; none of the papers, needs no network).
    """

    valid: float = 1.0
    hole: float = 1.0
    perceptual: float = 0.0
    style: float = 0.0
    tv: float = 0.0
    adversarial: float = 0.0
    pixel_norm: Literal["region", "all_pixels"] = "region"
    pixel_distance: Literal["l1", "l2"] = "l1"
    feature_outputs: tuple[int, ...] = (-1,)
    feature_images: Literal["raw_and_composite", "raw"] = "raw_and_composite"
    vgg_input: Literal["minus1_1", "imagenet", "unit"] = "minus1_1"
    vgg_layers: tuple[str, ...] = ("pool1", "pool2", "pool3")
    vgg_weights: str | None = None
    tv_region: Literal["hole", "composite"] = "hole"
    pixel_range: Literal["unit", "minus1_1"] = "unit"
    gan_mode: Literal["lsgan", "hinge", "nsgan", "relativistic"] = "lsgan"
    adv_input: Literal["first_composite", "final_composite", "first_raw", "final_raw", "every_composite"] = "final_composite"
    pyramid_downsample: Literal["bilinear", "area"] = "bilinear"
    aux: dict[str, float] = field(default_factory=dict)
    feature_matching: float = 0.0
    feature_style: float = 0.0
    detail_energy: float = 0.0
    spectrum: float = 0.0
    lattice: float = 0.0

    # feature_outputs are indices into the model's outputs (negative from the end): no range of their own
    _ranges: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "valid",
                "hole",
                "perceptual",
                "style",
                "tv",
                "adversarial",
                "aux",
                "feature_matching",
                "feature_style",
                "detail_energy",
                "spectrum",
                "lattice",
            ),
            AT_LEAST_0,
        ),
        "feature_outputs": Range(),
    }

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers and the learning-rate schedule (unit: epochs, applied per iteration).

    separate_optimizers: one optimiser per entry of the generator's ``param_groups()`` (LGNet: G1, G2,
      G3) instead of one for all. schedule: "constant"; "linear" = ``epochs_constant`` epochs at lr then
      linear decay to 0 over ``epochs_decay`` epochs (pix2pix/LGNet); "step" = lr * gamma every
      ``step_epochs`` epochs (a fraction allowed: iteration-based recipes), counted only up to
      ``step_until_epochs`` when set (PEN-Net: lr * 0.1 ** (min(it, 150k) // 100k), one decay in 1e6
      iterations). d_lr: D's learning rate;
      None = ``lr * d_lr_scale`` (MSA-Net: 0.1). grad_clip: max global grad norm per network (None = off).
      warmup_epochs: the lr rises linearly from 0 over this many epochs before the schedule applies (0 =
      off; no paper uses one: continuing trained weights with fresh Adam moments does).
    """

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 2e-4
    d_lr: float | None = None
    d_lr_scale: float = 1.0
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    separate_optimizers: bool = True
    schedule: Literal["constant", "linear", "step"] = "constant"
    epochs_constant: int = 1
    epochs_decay: int = 0
    step_epochs: float = 1.0
    gamma: float = 0.1
    grad_clip: float | None = None
    step_until_epochs: float | None = None
    warmup_epochs: float = 0.0

    _ranges: ClassVar[dict[str, Range]] = {
        "lr": ABOVE_0,
        "d_lr": ABOVE_0,
        "d_lr_scale": ABOVE_0,
        "betas": FRACTION,
        "weight_decay": AT_LEAST_0,
        "epochs_constant": AT_LEAST_0,
        "epochs_decay": AT_LEAST_0,
        "step_epochs": ABOVE_0,
        "gamma": Range(0, 1, lo_open=True),
        "grad_clip": ABOVE_0,
        "step_until_epochs": ABOVE_0,
        "warmup_epochs": AT_LEAST_0,
    }

    def __post_init__(self) -> None:
        check_ranges(self)

    def lr_factor(self, epoch: float) -> float:
        """Multiplier of the base lr at (fractional) ``epoch``; the trainer applies it every iteration."""
        warmup = min(1.0, epoch / self.warmup_epochs) if self.warmup_epochs else 1.0
        return warmup * self._schedule_factor(epoch)

    def _schedule_factor(self, epoch: float) -> float:
        if self.schedule == "linear":
            return (
                1.0 if epoch < self.epochs_constant else max(0.0, 1 - (epoch - self.epochs_constant) / max(self.epochs_decay, 1))
            )
        if self.schedule == "step":
            steps = epoch if self.step_until_epochs is None else min(epoch, self.step_until_epochs)
            return self.gamma ** (steps // self.step_epochs)
        return 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; written as JSON next to every run and in checkpoints.

    Length: ``epochs`` (None = optim.epochs_constant + optim.epochs_decay), cut short by ``max_steps``.
    Intervals are in optimisation steps (0 = never; a final checkpoint is always written).
    batch_size is per process (DDP: the global batch is batch_size * world size).
    ema_decay: the generator's weight average (None = none; checkpoints and evaluation use it). ema_warmup:
    the decay at step t is min(ema_decay, (1 + t) / (10 + t)) (TensorFlow's ``num_updates``), so an average
    started from weights far from where training goes (scratch, a projected start) forgets them within a few
    hundred steps instead of ~5/(1 - ema_decay); off by default (a continuation starts from good weights).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 4
    seed: int = 0
    epochs: int | None = None
    max_steps: int | None = None
    amp: Literal["none", "bf16", "fp16"] = "none"
    ema_decay: float | None = None
    ema_warmup: bool = False
    log_every: int = 50
    image_every: int = 500
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_checkpoints: int = 3  # 0 = keep every checkpoint
    # weights that start the run (fine-tuning: fresh optimisers, step 0): a checkpoint file (its G and D), or
    # "pretrained:NAME", the shipped weights of NAME (G only; D starts fresh)
    init_from: str | None = None

    _ranges: ClassVar[dict[str, Range]] = {
        "batch_size": AT_LEAST_1,
        "seed": AT_LEAST_0,
        "epochs": AT_LEAST_1,
        "max_steps": AT_LEAST_1,
        "ema_decay": FRACTION,
        **dict.fromkeys(("log_every", "image_every", "val_every", "ckpt_every"), AT_LEAST_0),
        "keep_checkpoints": AT_LEAST_0,
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if not _DEFER_CROSS_CHECKS.get():
            self.check_consistency()

    def ema_decay_at(self, step: int) -> float:
        """The EMA decay applied after optimisation step ``step`` (0-based); needs ``ema_decay``."""
        return min(self.ema_decay, (1 + step) / (10 + step)) if self.ema_warmup else self.ema_decay

    def check_consistency(self) -> None:
        """Checks across sections (deferred while ``apply_overrides`` applies a list, so order is free)."""
        if self.masks.drawn_size and self.masks.drawn_size < self.data.size:
            raise InpaintlabError(
                f"masks.drawn_size: expected 0 (off) or >= data.size ({self.data.size}), got {self.masks.drawn_size}"
            )
        if self.epochs is None and self.optim.epochs_constant + self.optim.epochs_decay < 1:
            raise InpaintlabError(
                "optim.epochs_constant + optim.epochs_decay: expected >= 1 (the run length when "
                f"epochs is None), got {self.optim.epochs_constant} + {self.optim.epochs_decay}"
            )


_DEFER_CROSS_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("defer_cross_checks", default=False)
_PREFIX = {DataConfig: "data.", MaskConfig: "masks.", LossConfig: "loss.", OptimConfig: "optim.", ModelConfig: "model."}


def check_ranges(cfg: Any) -> None:
    """Raise ``InpaintlabError`` (field, value, expectation) for a value outside its declared ``Range``.

    The declared range applies to the number itself, to each element of a tuple (nested tuples too)
    and to each value of a dict; None passes where the annotation allows it.
    """
    prefix, hints = _PREFIX.get(type(cfg), ""), _field_types(type(cfg))
    for name, allowed in type(cfg)._ranges.items():
        value, tp = getattr(cfg, name), hints[name]
        optional = typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)
        if value is None and optional:
            continue
        integer = _is_int_field(tp)
        what = f"{'None or ' if optional else ''}{'an integer' if integer else 'a number'} {allowed}"
        numbers = value.values() if isinstance(value, dict) else [value]
        if isinstance(value, dict):
            what = f"a table of numbers {allowed}"
        elif isinstance(value, (tuple, list)):
            what, numbers = f"numbers {allowed}", list(_flatten(value))
        for number in numbers:
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or number not in allowed
                or (integer and not isinstance(number, int))
            ):
                raise InpaintlabError(f"{prefix}{name}: expected {what}, got {value!r}")


def _is_int_field(tp: Any) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return all(a is int for a in args)


def _flatten(value: Any):
    for v in value:
        if isinstance(v, (tuple, list)):
            yield from _flatten(v)
        else:
            yield v


# --------------------------------------------------------------------------------------------------
# Generic machinery: works for any (nested) frozen dataclass.

_KWARGS_FIELD = "kwargs"  # a dict field with this name collects keys the section does not declare


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (converting lists to tuples, ints to floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except InpaintlabError:
                pass
        raise InpaintlabError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise InpaintlabError(f"{key}: expected one of {typing.get_args(tp)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise InpaintlabError(f"{key}: expected a list like [1, 2], got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(args) != len(value):
            raise InpaintlabError(f"{key}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise InpaintlabError(f"{key}: expected a table/dict, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InpaintlabError(f"{key}: expected a table of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise InpaintlabError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InpaintlabError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InpaintlabError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InpaintlabError(f"{key}: expected a string, got {value!r}")
        return value
    raise InpaintlabError(f"{key}: unsupported config type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, strictly (unknown keys and wrong types are errors)."""
    fields = _field_types(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InpaintlabError(f"unknown config key {prefix}{unknown[0]!s}; {cls.__name__} has: {', '.join(sorted(fields))}")
    return cls(**{k: _coerce(v, fields[k], prefix + k) for k, v in data.items()})


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists, so it is JSON/TOML friendly)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def _parse_value(text: str, tp: Any) -> Any:
    """Turn the right-hand side of ``--set key=value`` into a Python value for annotation ``tp``."""
    if tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp)):
        if text.lower() in ("none", "null") and type(None) in typing.get_args(tp):
            return None
        return text
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Return a copy of ``cfg`` with each ``"a.b=value"`` applied, strictly.

    A dataclass field named ``kwargs`` (a dict) receives keys its section does not declare, so
    ``model.sets=7`` sets ``model.kwargs["sets"]``; the factory then rejects unknown kwargs by name.
    """
    token = _DEFER_CROSS_CHECKS.set(True)
    try:
        for item in overrides:
            if "=" not in item:
                raise InpaintlabError(f"--set expects key=value (e.g. optim.lr=1e-4), got {item!r}")
            key, text = item.split("=", 1)
            key = key.strip()
            if not key:
                raise InpaintlabError(f"--set expects key=value (e.g. optim.lr=1e-4), got {item!r}")
            cfg = _set_path(cfg, key.split("."), text, key)
    finally:
        _DEFER_CROSS_CHECKS.reset(token)
    if hasattr(cfg, "check_consistency"):
        cfg.check_consistency()
    return cfg


def _set_path(node: Any, parts: list[str], text: str, full_key: str) -> Any:
    fields = _field_types(type(node))
    name = parts[0]
    if name not in fields:
        if _KWARGS_FIELD in fields and len(parts) == 1:
            kwargs = dict(getattr(node, _KWARGS_FIELD))
            kwargs[name] = _parse_value(text, Any)
            return dataclasses.replace(node, **{_KWARGS_FIELD: kwargs})
        raise InpaintlabError(f"unknown config key {full_key!r}: {type(node).__name__} has {', '.join(sorted(fields))}")
    tp = fields[name]
    if len(parts) == 1:
        if dataclasses.is_dataclass(tp):
            raise InpaintlabError(f"{full_key} is a section; set one of its keys, e.g. {full_key}.<key>=...")
        value = _coerce(_parse_value(text, tp), tp, full_key)
        return dataclasses.replace(node, **{name: value})
    current = getattr(node, name)
    if isinstance(current, dict):
        if len(parts) != 2:
            raise InpaintlabError(f"{full_key}: {name} is a flat table; use {name}.<key>=value")
        updated = dict(current)
        updated[parts[1]] = _parse_value(text, Any)
        return dataclasses.replace(node, **{name: updated})
    if not dataclasses.is_dataclass(current):
        raise InpaintlabError(f"{full_key}: {name} is a {_type_name(tp)}, not a section")
    return dataclasses.replace(node, **{name: _set_path(current, parts[1:], text, full_key)})


# --------------------------------------------------------------------------------------------------
# Files


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write ``cfg`` as JSON (``.json``) or TOML (``.toml``)."""
    path = Path(path)
    data = to_dict(cfg)
    if path.suffix == ".toml":
        path.write_text(_to_toml(data))
        if load_config(path, type(cfg)) != cfg:
            raise InpaintlabError(f"{path}: this config does not survive TOML (a None over a non-None default?); use .json")
    else:
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def load_config(path: str | Path, cls: type = TrainConfig) -> Any:
    """Read a JSON or TOML config file strictly into ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise InpaintlabError(f"config file not found: {path}")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise InpaintlabError(f"cannot parse config {path}: {err}") from None
    return from_dict(cls, data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise InpaintlabError(f"cannot write {v!r} to TOML")


def _to_toml(data: dict[str, Any]) -> str:
    """TOML for a config dict: top-level sections become ``[tables]``, nested dicts inline tables.

    TOML has no null, so ``None`` values are left out (they load back as the field default).
    """
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, dict)]
    out = "\n".join(scalars) + "\n"
    for k, v in data.items():
        if isinstance(v, dict):
            body = "".join(f"{kk} = {_toml_value(vv)}\n" for kk, vv in v.items() if vv is not None)
            out += f"\n[{k}]\n{body}"
    return out

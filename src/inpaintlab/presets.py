"""Training recipes, one per paper x dataset: the only home of the papers' hyper-parameters.

``PRESETS[name]`` is a ``TrainConfig``; ``inpaintlab train --preset NAME --set key=value`` starts from it.

LGNet (paper Sec. IV-A, official code notes 1.7-1.9): batch 4; Adam lr 2e-4, betas (0.5, 0.999), one
optimiser per sub-network (G1, G2, G3) plus one for D; 100 epochs at constant lr then 100 epochs of
linear decay to 0; 256x256 bicubic resize (no crop), random horizontal flip; loss weights hole 6,
valid 1, TV 0.1, perceptual 0.05, style 120 (VGG16 pool1-3 on [-1,1] inputs), LSGAN 0.1 on the
coarse composite (official code, notes 1.7 / trap 1); perceptual/style/TV on stages 2 and 3, i.e.
``outputs`` indices (1, 2), each on the raw output and the composite.
Masks: the official training masks ("mixmask_train") are unpublished; we use the seeded stroke
generator spread uniformly over the six hole-ratio bins (``masks.build_mask_source("strokes")``).
The paper presets leave ``data.root`` empty: pass ``--set data.root=/path/to/train/images``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import DataConfig, LossConfig, MaskConfig, ModelConfig, OptimConfig, TrainConfig, apply_overrides, load_config
from .errors import InpaintlabError

_LGNET_LOSS = LossConfig(
    valid=1.0,
    hole=6.0,
    perceptual=0.05,
    style=120.0,
    tv=0.1,
    adversarial=0.1,
    feature_outputs=(1, 2),
    vgg_input="minus1_1",
    tv_region="hole",
    gan_mode="lsgan",
    adv_input="first_composite",
)
_LGNET_OPTIM = OptimConfig(
    name="adam",
    lr=2e-4,
    betas=(0.5, 0.999),
    separate_optimizers=True,
    schedule="linear",
    epochs_constant=100,
    epochs_decay=100,
)


def _lgnet(val_count: int = 100) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(name="lgnet", discriminator="lgnet"),
        data=DataConfig(root="", preprocess="resize", size=256, flip=True, num_workers=4, val_count=val_count),
        masks=MaskConfig(source="strokes", val_source="strokes"),
        loss=_LGNET_LOSS,
        optim=_LGNET_OPTIM,
        batch_size=4,
        log_every=100,
        image_every=2000,
        val_every=10000,
        ckpt_every=10000,
    )


# A CPU-sized LGNet run on the photos shipped with scikit-image/scikit-learn/matplotlib: the LGNet
# recipe at 64x64 with lgnet_tiny. No pretrained VGG16 file exists offline here, so the perceptual and
# style terms use a seeded *random* VGG16 (recorded in the config as loss.vgg_weights="random").
_TINY = dataclasses.replace(
    _lgnet(val_count=8),
    model=ModelConfig(name="lgnet_tiny", discriminator="lgnet_tiny"),
    data=DataConfig(root="builtin", preprocess="resize", size=64, flip=True, num_workers=0, val_count=8),
    loss=dataclasses.replace(_LGNET_LOSS, vgg_weights="random"),
    optim=dataclasses.replace(_LGNET_OPTIM, epochs_constant=20, epochs_decay=20),
    log_every=10,
    image_every=100,
    val_every=100,
    ckpt_every=100,
)

PRESETS: dict[str, TrainConfig] = {
    "lgnet_celebahq": _lgnet(),
    "lgnet_places2": _lgnet(),
    "lgnet_psv": _lgnet(),
    "lgnet_tiny_builtin": _TINY,
}


def get_preset(name: str) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name``; unknown names raise ``InpaintlabError`` listing the presets."""
    if name not in PRESETS:
        raise InpaintlabError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def resolve_train_config(
    preset: str | None, config_file: str | None, overrides: list[str], amp: str | None = None
) -> tuple[TrainConfig, str]:
    """(config, run name): a preset or a config file (exactly one), then ``--set`` overrides, then ``--amp``."""
    if (preset is None) == (config_file is None):
        raise InpaintlabError(f"give exactly one of --preset NAME or --config FILE (presets: {', '.join(sorted(PRESETS))})")
    cfg = get_preset(preset) if preset else load_config(config_file)
    cfg = apply_overrides(cfg, list(overrides) + ([f"amp={amp}"] if amp else []))
    return cfg, preset or Path(config_file).stem


__all__ = ["PRESETS", "get_preset", "resolve_train_config"]

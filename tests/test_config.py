"""Config sections, strict overrides, file round-trips and the paper presets."""

import dataclasses
import json
import math
import re
import typing

import pytest

from inpaintlab import InpaintlabError
from inpaintlab.config import (
    DataConfig,
    LossConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    Range,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from inpaintlab.models import list_discriminators, list_models
from inpaintlab.presets import PRESETS, get_preset, resolve_train_config


def test_overrides_parse_each_field_type():
    cfg = apply_overrides(
        TrainConfig(),
        [
            "optim.lr=1e-3",
            "optim.betas=[0.9, 0.99]",
            "optim.grad_clip=1",
            "loss.feature_outputs=(1, 2)",
            "loss.aux.contrastive=0.5",
            "model.discriminator=lgnet",
            "model.ngf_unet=8",
            "data.flip=false",
            "data.val_root=none",
            "epochs=3",
            "max_steps=none",
            "amp=bf16",
        ],
    )
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.9, 0.99) and cfg.optim.grad_clip == 1.0
    assert isinstance(cfg.optim.grad_clip, float)
    assert cfg.loss.feature_outputs == (1, 2) and cfg.loss.aux == {"contrastive": 0.5}
    assert cfg.model.discriminator == "lgnet" and cfg.model.kwargs == {"ngf_unet": 8}
    assert cfg.data.flip is False and cfg.data.val_root is None
    assert cfg.epochs == 3 and cfg.max_steps is None and cfg.amp == "bf16"
    assert apply_overrides(cfg, ["model.discriminator=none"]).model.discriminator is None


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("loss.gan_mode=wgan", "loss.gan_mode: expected one of"),
        ("optim.schedule=cosine", "optim.schedule: expected one of"),
        ("amp=fp8", "amp: expected one of"),
        ("batch_size=2.5", "batch_size: expected an integer"),
        ("data.flip=maybe", "data.flip: expected true/false"),
        ("optim.betas=[0.5]", "optim.betas: expected 2 values"),
        ("optim=1", "optim is a section"),
        ("loss.hole", "expects key=value"),
    ],
)
def test_bad_overrides_name_the_key_and_the_expectation(override, fragment):
    with pytest.raises(InpaintlabError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        apply_overrides(TrainConfig(), [override])


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_every_preset_round_trips_through_files(tmp_path, name, suffix):
    cfg = apply_overrides(get_preset(name), ["loss.aux.memory=2.0", "model.ngf=8", "optim.grad_clip=0.5"])
    path = save_config(cfg, tmp_path / f"cfg{suffix}")
    assert load_config(path) == cfg
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_lgnet_presets_hold_the_paper_numbers():
    for name in ("lgnet_celebahq", "lgnet_places2", "lgnet_psv"):
        cfg = get_preset(name)
        assert cfg.batch_size == 4 and cfg.model.name == "lgnet" and cfg.model.discriminator == "lgnet"
        o = cfg.optim
        assert (o.name, o.lr, o.betas, o.separate_optimizers) == ("adam", 2e-4, (0.5, 0.999), True)
        assert (o.schedule, o.epochs_constant, o.epochs_decay) == ("linear", 100, 100)
        assert (cfg.data.size, cfg.data.preprocess, cfg.data.flip) == (256, "resize", True)
        w = cfg.loss
        assert (w.valid, w.hole, w.tv, w.perceptual, w.style, w.adversarial) == (1, 6, 0.1, 0.05, 120, 0.1)
        assert (w.gan_mode, w.adv_input, w.feature_outputs, w.vgg_input) == ("lsgan", "first_composite", (1, 2), "minus1_1")
    tiny = get_preset("lgnet_tiny_builtin")
    assert tiny.model.name in list_models() and tiny.model.discriminator in list_discriminators()
    assert tiny.data.root == "builtin" and tiny.loss.vgg_weights == "random"
    with pytest.raises(InpaintlabError, match="unknown preset 'lgnet_x'; available: lgnet_celebahq"):
        get_preset("lgnet_x")


def test_presets_are_immutable_values():
    cfg = get_preset("lgnet_psv")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 8
    changed = apply_overrides(cfg, ["batch_size=8"])
    assert changed.batch_size == 8 and get_preset("lgnet_psv").batch_size == 4


def test_resolve_train_config_sources(tmp_path):
    cfg, name = resolve_train_config("lgnet_psv", None, ["optim.lr=1e-4"], amp="bf16")
    assert name == "lgnet_psv" and cfg.optim.lr == 1e-4 and cfg.amp == "bf16"
    path = save_config(cfg, tmp_path / "mine.toml")
    again, name = resolve_train_config(None, str(path), [])
    assert again == cfg and name == "mine"
    with pytest.raises(InpaintlabError, match="exactly one of --preset"):
        resolve_train_config("lgnet_psv", str(path), [])
    with pytest.raises(InpaintlabError, match="exactly one of --preset"):
        resolve_train_config(None, None, [])


# ------------------------------------------------------------------------------------- value ranges

_SECTIONS = {
    "": TrainConfig,
    "data.": DataConfig,
    "masks.": MaskConfig,
    "loss.": LossConfig,
    "optim.": OptimConfig,
    "model.": ModelConfig,
}


def _numeric(tp) -> bool:
    """Does annotation ``tp`` hold numbers (int/float, optional, in a tuple or as dict values)?"""
    if tp in (int, float):
        return True
    return any(_numeric(arg) for arg in typing.get_args(tp) if arg is not type(None) and arg is not Ellipsis)


def _outside(allowed: Range, integer: bool) -> list:
    """Values just outside ``allowed`` (and a non-finite one for floats)."""
    values = [] if integer else [math.inf]
    step = 1 if integer else 0.5
    if allowed.lo is not None:
        values.append(allowed.lo if allowed.lo_open else allowed.lo - step)
    if allowed.hi is not None:
        values.append(allowed.hi if allowed.hi_open else allowed.hi + step)
    return values


def _shaped(default, bad):
    """``bad`` put in the place of one number of a value shaped like ``default``."""
    if isinstance(default, dict):
        return {"some_term": bad}
    if isinstance(default, tuple):
        if default and isinstance(default[0], tuple) or not default and bad != math.inf:  # val_bins: pairs
            return ((bad, 0.5),) if bad < 0.5 else ((0.1, bad),)
        return (bad, *default[1:])
    return bad


def _cases():
    for prefix, cls in _SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if not _numeric(tp) or dataclasses.is_dataclass(tp) or f.name == "kwargs":
                continue
            yield prefix, cls, f, tp


def test_every_numeric_field_declares_a_range_and_rejects_values_outside_it():
    """Walk every field of every config dataclass: numbers out of range are one-line errors at build time."""
    checked, unbounded = [], []
    for prefix, cls, f, tp in _cases():
        assert f.name in cls._ranges, f"{prefix}{f.name} declares no valid range"
        allowed = cls._ranges[f.name]
        integer = all(a in (int, type(None), Ellipsis) for a in typing.get_args(tp) or [tp])
        default = getattr(cls(), f.name)
        values = _outside(allowed, integer)
        if not values:
            unbounded.append(prefix + f.name)
            continue
        for bad in values:
            value = _shaped(default, bad)
            key = prefix + f.name
            # built from Python (presets), from a --set override and from a config file's dict
            with pytest.raises(InpaintlabError) as built:
                cls(**{f.name: value})
            message = str(built.value)
            assert message.startswith(f"{key}: expected") and "\n" not in message, message
            text = json.dumps(value).replace("Infinity", "1e999")
            with pytest.raises(InpaintlabError, match=f"^{re.escape(key)}: expected"):
                apply_overrides(TrainConfig(), [f"{key}={text}"])
            data = to_dict(TrainConfig())
            section = data[prefix.rstrip(".")] if prefix else data
            section[f.name] = value
            with pytest.raises(InpaintlabError, match=f"^{re.escape(key)}: expected"):
                from_dict(TrainConfig, data)
            checked.append(key)
    assert unbounded == ["loss.feature_outputs"]  # indices into the model's outputs, negative from the end
    assert {
        "batch_size",
        "optim.lr",
        "optim.betas",
        "loss.style",
        "loss.aux",
        "masks.margin",
        "ckpt_every",
        "data.size",
        "optim.grad_clip",
        "masks.val_bins",
    } <= set(checked)


def test_checks_across_sections_wait_for_the_whole_override_list():
    cfg = get_preset("lgnet_compact_cpu")  # data.size 128, masks.drawn_size 256
    with pytest.raises(InpaintlabError, match=r"^masks\.drawn_size: expected 0 \(off\) or >= data\.size \(512\)"):
        apply_overrides(cfg, ["data.size=512"])
    assert apply_overrides(cfg, ["data.size=512", "masks.drawn_size=1024"]).masks.drawn_size == 1024
    assert apply_overrides(cfg, ["masks.drawn_size=0"]).masks.drawn_size == 0
    with pytest.raises(InpaintlabError, match=r"epochs_constant \+ optim\.epochs_decay: expected >= 1"):
        apply_overrides(cfg, ["optim.epochs_constant=0", "optim.epochs_decay=0"])
    assert apply_overrides(cfg, ["optim.epochs_constant=0", "optim.epochs_decay=0", "epochs=2"]).epochs == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ("batch_size=0", "batch_size: expected an integer >= 1, got 0"),
        ("batch_size=-1", "batch_size: expected an integer >= 1, got -1"),
        ("optim.lr=-1", "optim.lr: expected a number > 0, got -1.0"),
        ("ckpt_every=-5", "ckpt_every: expected an integer >= 0, got -5"),
        ("optim.betas=[0.5,1.5]", "optim.betas: expected numbers in [0, 1), got (0.5, 1.5)"),
    ],
)
def test_cli_train_rejects_values_out_of_range_in_one_line(tmp_path, capsys, override, message):
    from inpaintlab.cli import main

    assert main(["train", "--preset", "lgnet_tiny_builtin", "--out", str(tmp_path), "--set", override]) == 2
    assert capsys.readouterr().err.strip() == f"inpaintlab: error: {message}"
    assert not any(tmp_path.iterdir())  # nothing was started

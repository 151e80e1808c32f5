"""Config sections, strict overrides, file round-trips and the paper presets."""

import dataclasses

import pytest

from inpaintlab import InpaintlabError
from inpaintlab.config import TrainConfig, apply_overrides, from_dict, load_config, save_config, to_dict
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

"""Presets: every recipe builds its model and discriminator, the toy ones train a step, paper numbers hold."""

import dataclasses

import pytest
import torch

from inpaintlab.config import TrainConfig, load_config, save_config
from inpaintlab.layers.upsample import ResizeConv2d
from inpaintlab.models import create_discriminator, create_model
from inpaintlab.presets import ARCH_ROWS, COMPARE_IMAGES_PER_S, COMPARE_ROWS, COMPARE_SECONDS, PRESETS
from inpaintlab.train import Trainer

TINY = sorted(name for name in PRESETS if name.endswith("_tiny_builtin"))
# named compact recipes: the shipped model's and its continuations
CPU_VARIANTS = sorted(name for name in PRESETS if name.endswith("_cpu") or name.startswith("lgnet_compact_"))
COMPARE = sorted(name for name in PRESETS if name.startswith("compare_"))  # the equal-budget comparison
ARCH = sorted(name for name in PRESETS if name.startswith("arch_"))  # the architecture choice (compact, CPU)
PAPER = sorted(name for name in PRESETS if name not in TINY + CPU_VARIANTS + COMPARE + ARCH)


def test_the_requested_presets_exist():
    expected = {
        "msanet_psv", "msanet_celeba", "msanet_places2", "pconv_unet_places2", "srpnet_celebahq", "srpnet_dtd",
        "srpnet_facade", "srpnet_places2", "pennet_places2", "cstfnet_celebahq", "cstfnet_psv", "cstfnet_places2",
        "unet_cicm_places2", "unet_cicm_celeba", "pennet_lg_places2", "srpnet_lg_places2", "msanet_lg_psv",
        "msanet_lg_places2",
    }  # fmt: skip
    assert expected <= set(PAPER)
    toys = ("msanet", "srpnet", "pennet", "cstfnet", "unet_cicm", "unet15", "pennet_lg", "msanet_lg")
    assert {f"{m}_tiny_builtin" for m in toys} <= set(TINY)


@pytest.mark.parametrize("name", PAPER)
def test_paper_preset_builds_its_model_and_discriminator(name):
    cfg = PRESETS[name]
    with torch.device("meta"):  # no memory, no initialisation cost: only the wiring is checked
        model = create_model(cfg.model.name, **cfg.model.kwargs)
        disc = create_discriminator(cfg.model.discriminator, **cfg.model.discriminator_kwargs)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    assert sum(p.numel() for p in disc.parameters()) > 0
    assert cfg.data.size == 256 and cfg.data.root == ""  # the user points at the data


@pytest.mark.parametrize("name", TINY)
def test_tiny_preset_runs_one_train_step_on_synthetic_data(tmp_path, name):
    cfg = PRESETS[name]
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root="synthetic:4", val_count=0))
    trainer = Trainer(cfg, tmp_path)
    sample = next(iter(trainer._loader(0, 0)))
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    logs = trainer.train_step(sample.image, sample.mask, sample.extras)
    assert torch.isfinite(logs["g/total"]) and torch.isfinite(logs["d/loss"])
    for name_ in cfg.loss.aux:  # every weighted aux term was produced and logged
        assert torch.isfinite(logs[f"g/aux/{name_}"])
    changed = sum(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))
    assert changed > 0


def _assert_common(cfg: TrainConfig, batch: int, lr: float, betas: tuple[float, float]) -> None:
    assert (cfg.batch_size, cfg.optim.lr, cfg.optim.betas, cfg.data.size) == (batch, lr, betas, 256)


@pytest.mark.parametrize(
    "name,preprocess",
    [
        ("msanet_psv", "scene_crop"),
        ("msanet_celeba", "face_crop"),
        ("msanet_places2", "scene_crop"),
        ("pconv_unet_places2", "scene_crop"),
    ],
)
def test_msanet_presets_hold_the_paper_numbers(name, preprocess):
    cfg = PRESETS[name]
    loss = cfg.loss
    # MSA-Net Sec. 4.2: batch 6, 256; weights valid 1, hole 6, perceptual 0.05, style 120, adversarial 0.1, TV 0.1
    _assert_common(cfg, 6, 2e-4, (0.9, 0.999))
    assert (loss.valid, loss.hole, loss.perceptual, loss.style, loss.adversarial, loss.tv) == (1, 6, 0.05, 120, 0.1, 0.1)
    assert cfg.data.preprocess == preprocess and cfg.masks.rotate90
    # official MANet (notes 2.1): mean over all pixels, [0,1] VGG, BCE on the raw output, D lr 0.1 x G lr
    assert (loss.pixel_norm, loss.vgg_input, loss.gan_mode, loss.adv_input) == ("all_pixels", "unit", "nsgan", "final_raw")
    assert loss.tv_region == "hole" and cfg.optim.d_lr_scale == 0.1 and cfg.optim.d_lr is None
    assert cfg.model.discriminator == "msanet" and cfg.model.discriminator_kwargs == {"use_sigmoid": False}
    assert cfg.model.name == ("pconv_unet" if name.startswith("pconv") else "msanet")


@pytest.mark.parametrize(
    "name,images", [("srpnet_celebahq", 28_000), ("srpnet_dtd", 4_512), ("srpnet_facade", 506), ("srpnet_places2", 1_829_960)]
)
def test_srpnet_presets_hold_the_paper_numbers(name, images):
    cfg = PRESETS[name]
    # SRPNet Sec. 4.1: 256, batch 64, Adam 1e-4, betas (0.5, 0.999), decay 0.1; global + local D
    _assert_common(cfg, 64, 1e-4, (0.5, 0.999))
    assert (cfg.optim.schedule, cfg.optim.gamma) == ("step", 0.1)
    assert (cfg.model.name, cfg.model.discriminator) == ("srpnet", "srpnet")
    # PEN-Net fill-ins: pyramid 0.5, hinge 0.1, hole 6 / valid 1, decay after 100k of 150k iterations
    assert cfg.loss.aux == {"pyramid": 0.5} and (cfg.loss.gan_mode, cfg.loss.adversarial) == ("hinge", 0.1)
    assert (cfg.loss.hole, cfg.loss.valid) == (6, 1)
    steps_per_epoch = images // 64
    assert cfg.optim.lr_factor((100_000 - 1) / steps_per_epoch) == 1.0
    assert cfg.optim.lr_factor((100_000 + 1) / steps_per_epoch) == pytest.approx(0.1)
    assert cfg.max_steps == 150_000 and cfg.epochs * steps_per_epoch >= 150_000


def test_pennet_preset_holds_the_pennet_numbers():
    cfg = PRESETS["pennet_places2"]
    # implementation-notes 3.2: batch 16, Adam 1e-4 (0.5, 0.999), d2glr 1, hinge 0.1, pyramid 0.5, hole 6, valid 1
    _assert_common(cfg, 16, 1e-4, (0.5, 0.999))
    assert (cfg.model.name, cfg.model.discriminator, cfg.optim.d_lr_scale, cfg.optim.d_lr) == ("pennet", "pennet", 1.0, None)
    assert (cfg.loss.gan_mode, cfg.loss.adversarial, cfg.loss.aux) == ("hinge", 0.1, {"pyramid": 0.5})
    assert (cfg.loss.hole, cfg.loss.valid, cfg.loss.adv_input) == (6, 1, "final_composite")
    # core/dataset.py, "mask": "square": randomly placed, flipped, rotated, dilated squares; test.py: the centred one
    assert (cfg.masks.source, cfg.masks.val_source) == ("pennet_square", "center")
    # "iterations": 100e4 with lr * 0.1 ** (min(it, niter_steady=150k) // niter=100k): one decay, never again
    steps_per_epoch = 1_803_460 // 16
    assert cfg.max_steps == 1_000_000 and cfg.epochs * steps_per_epoch >= 1_000_000
    factors = [cfg.optim.lr_factor(it / steps_per_epoch) for it in (99_999, 100_001, 200_001, 999_999)]
    assert factors[0] == 1.0 and factors[1:] == pytest.approx([0.1, 0.1, 0.1])
    assert all(PRESETS[f"srpnet_{d}"].masks.source == "pennet_square|strokes" for d in ("places2", "celebahq"))
    # core/dataset.py: ColorJitter(0.05, 0.05, 0.05, 0.05) on every training image; SRPNet names none
    assert cfg.data.color_jitter == (0.05, 0.05, 0.05, 0.05) and PRESETS["pennet_lg_places2"].data == cfg.data
    assert PRESETS["srpnet_places2"].data.color_jitter == (0, 0, 0, 0)


@pytest.mark.parametrize("name", ["cstfnet_celebahq", "cstfnet_psv", "cstfnet_places2"])
def test_cstfnet_presets_hold_the_paper_numbers(name):
    cfg = PRESETS[name]
    loss = cfg.loss
    # CSTFNet Sec. 4: batch 8, Adam 2e-4, betas (0.5, 0.999), 256; alpha 6, beta 0.1, LSGAN; VGG relu1_1..relu5_1
    _assert_common(cfg, 8, 2e-4, (0.5, 0.999))
    assert (loss.hole, loss.valid, loss.adversarial, loss.gan_mode) == (6, 1, 0.1, "lsgan")
    assert (loss.perceptual, loss.style) == (0.05, 120)
    assert loss.vgg_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert set(loss.aux) == {"contrastive", "feature_l2"} and all(w > 0 for w in loss.aux.values())
    assert loss.adv_input == "every_composite" and cfg.model.name == "cstfnet"


@pytest.mark.parametrize("name", ["unet_cicm_places2", "unet_cicm_celeba"])
def test_cicm_presets_hold_the_paper_numbers(name):
    cfg = PRESETS[name]
    loss = cfg.loss
    # CICM Eq. 9: L2 inpainting 1.0, relativistic adversarial 0.1, ratio 1.0, inter 20, intra 0.5
    assert (loss.pixel_distance, loss.pixel_norm, loss.valid, loss.hole) == ("l2", "all_pixels", 1, 1)
    assert (loss.gan_mode, loss.adversarial) == ("relativistic", 0.1)
    assert loss.aux == {"ratio": 1.0, "inter": 20.0, "intra": 0.5}
    assert cfg.masks.val_bins == ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6))  # Sec. 5.1 mask groups
    assert cfg.model.name == "unet_cicm" and cfg.data.size == 256


@pytest.mark.parametrize("name", ["unet_cicm_places2", "unet_cicm_celeba", "unet_cicm_tiny_builtin"])
def test_cicm_presets_cap_the_run_and_use_the_scaled_softmax(name):
    """Issue 15: a 1e6-iteration cap (100 epochs of Places2's 8M images would be ~1e8) and soft Eq. 2/4 weights."""
    cfg = PRESETS[name]
    assert cfg.model.kwargs == {"softmax_similarity": "scaled_dot"}
    with torch.device("meta"):
        model = create_model(cfg.model.name, **cfg.model.kwargs)
    assert model.cicm.memory.softmax_similarity == "scaled_dot" and model.cicm.ratio_target == "fraction"
    if name.endswith("_tiny_builtin"):
        assert cfg.max_steps == 40
    else:
        assert cfg.max_steps == 1_000_000 and cfg.batch_size == 8


def test_cstfnet_presets_weigh_the_size_independent_eq20_and_name_the_mask_stand_in():
    import inspect

    from inpaintlab import presets

    cfg = PRESETS["cstfnet_places2"]
    assert cfg.loss.aux == {"contrastive": 0.1, "feature_l2": 0.1}
    assert create_model("cstfnet_tiny", **cfg.model.kwargs).feature_l2 == "normalized"
    source = inspect.getsource(presets)
    block = source[source.index("-- CSTFNet\n") : source.index("_CSTFNET_LOSS = ")]  # the CSTFNet comment block
    assert "Liu et al." in block and "stand-in" in block and "--set masks.source=" in block


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_every_preset_round_trips_through_json_and_toml(tmp_path, name, suffix):
    path = save_config(PRESETS[name], tmp_path / f"cfg{suffix}")
    assert load_config(path) == PRESETS[name]


# ------------------------------------------------------------------ equal-budget comparison (issue 16)
COMPARE_PAPER = {
    "lgnet": "lgnet_places2",
    "msanet": "msanet_places2",
    "pconv_unet": "pconv_unet_places2",
    "cstfnet": "cstfnet_places2",
    "srpnet": "srpnet_places2",
    "pennet": "pennet_places2",
    "pennet_lg": "pennet_lg_places2",
    "unet_cicm": "unet_cicm_places2",
    "unet15": "unet_cicm_places2",
}


def test_the_comparison_has_every_row_the_issue_names():
    assert set(COMPARE_ROWS) == set(COMPARE_PAPER) == set(COMPARE_IMAGES_PER_S)
    assert COMPARE == sorted(f"compare_{row}" for row in COMPARE_ROWS)


@pytest.mark.parametrize("row", sorted(COMPARE_PAPER))
def test_comparison_rows_share_one_rule_and_keep_their_papers_losses_and_optimiser(row):
    cfg, paper = COMPARE_ROWS[row], PRESETS[COMPARE_PAPER[row]]
    assert (cfg.data.preprocess, cfg.data.size, cfg.masks.drawn_size, cfg.batch_size, cfg.amp, cfg.seed) == (
        "crop",
        128,
        256,
        16,
        "bf16",
        0,
    )
    assert cfg.data.root == cfg.masks.source == ""  # the split's lists come from the command line
    steps = round(COMPARE_SECONDS * COMPARE_IMAGES_PER_S[row] / cfg.batch_size)
    assert cfg.max_steps == steps and cfg.epochs * (2024 // 16) >= steps  # the budget, never cut by epochs
    assert cfg.ema_decay == pytest.approx(1 - 5 / steps, abs=1e-4)
    assert cfg.loss.perceptual == cfg.loss.style == 0  # no pretrained VGG16 offline
    same = dataclasses.replace(cfg.loss, perceptual=paper.loss.perceptual, style=paper.loss.style)
    if row == "unet15":  # CICM's recipe without the memory's terms
        same = dataclasses.replace(same, aux=paper.loss.aux)
    assert same == paper.loss
    assert dataclasses.replace(cfg.optim, schedule=paper.optim.schedule) == paper.optim
    assert cfg.model.discriminator == paper.model.discriminator and cfg.model.discriminator_kwargs["ndf"] == 32


def test_each_papers_baseline_keeps_its_methods_width():
    kwargs = {row: cfg.model.kwargs for row, cfg in COMPARE_ROWS.items()}
    assert kwargs["msanet"] == kwargs["pconv_unet"]  # MSA-Net vs the PConv U-Net
    assert kwargs["srpnet"] == kwargs["pennet"]  # SRPNet Table 5
    assert {k: v for k, v in kwargs["unet_cicm"].items() if k in kwargs["unet15"]} == kwargs["unet15"]  # CICM Table 3
    lg = {k: kwargs["pennet_lg"][k] for k in ("ngf_unet", "ngf_local", "num_downs")}
    assert kwargs["pennet_lg"] == {**kwargs["pennet"], **lg} and lg == {
        "ngf_unet": kwargs["lgnet"]["ngf_unet"],
        "ngf_local": kwargs["lgnet"]["ngf_local"],
        "num_downs": kwargs["lgnet"]["num_downs"],
    }  # LGNet Table VIII: PEN + LGNet's own stages


@pytest.mark.parametrize("row", sorted(COMPARE_PAPER))
def test_comparison_row_trains_one_step_at_its_crop_size(tmp_path, row):
    cfg = COMPARE_ROWS[row]
    cfg = dataclasses.replace(
        cfg,
        batch_size=2,
        data=dataclasses.replace(cfg.data, root="synthetic:2", val_count=0),
        masks=dataclasses.replace(cfg.masks, source="strokes", val_source="strokes"),
    )
    trainer = Trainer(cfg, tmp_path)
    sample = next(iter(trainer._loader(0, 0)))
    assert sample.image.shape[-2:] == (128, 128)
    logs = trainer.train_step(sample.image, sample.mask, sample.extras)
    assert torch.isfinite(logs["g/total"]) and torch.isfinite(logs["d/loss"])
    for name in cfg.loss.aux:
        assert torch.isfinite(logs[f"g/aux/{name}"])


CONTINUATIONS = sorted(name for name in CPU_VARIANTS if PRESETS[name].init_from)  # from the shipped weights


def test_texture_continuations_change_only_the_loss_balance():
    """The texture recipes (issue 23) are the plain continuation with other loss weights: same data,
    schedule, discriminator and starting weights; ``_lama`` drops the hole L1 and TV, as LaMa does; ``_rc``
    is the texture recipe on the resize-conv generator with the quarter-width discriminator; ``_x3`` (segment 11)
    is the texture recipe with both terms x3, the quarter-width discriminator and 7 + 12 epochs."""
    plain, base = PRESETS["lgnet_compact_continue"], PRESETS["lgnet_compact_texture"]
    texture = [name for name in CONTINUATIONS if name.startswith("lgnet_compact_texture")]
    assert texture == [f"lgnet_compact_texture{s}" for s in ("", "_heavy", "_lama", "_rc", "_x3")]
    rc = PRESETS["lgnet_compact_texture_rc"]
    assert rc.model.kwargs == {"upsample": "resize_conv"} and rc.model.discriminator_kwargs == {"ndf": 16}
    assert dataclasses.replace(rc, model=base.model) == base
    x3 = PRESETS["lgnet_compact_texture_x3"]
    assert x3.model.discriminator_kwargs == {"ndf": 16} and (x3.optim.epochs_constant, x3.optim.epochs_decay) == (7, 12)
    assert (base.loss.adversarial, base.loss.feature_matching) == (0.1, 1.0)
    assert x3.loss == dataclasses.replace(base.loss, adversarial=0.3, feature_matching=3.0)
    assert dataclasses.replace(x3, model=base.model, loss=base.loss, optim=base.optim) == base
    texture.remove("lgnet_compact_texture_rc")
    texture.remove("lgnet_compact_texture_x3")
    for name in texture:
        assert dataclasses.replace(PRESETS[name], loss=plain.loss) == plain
    pulls = [PRESETS[name].loss.adversarial + PRESETS[name].loss.feature_matching for name in texture]
    assert pulls == sorted(pulls) and pulls[0] < pulls[1]
    lama = PRESETS["lgnet_compact_texture_lama"].loss
    assert (lama.hole, lama.tv, lama.adversarial, lama.feature_matching) == (0.0, 0.0, 10.0, 100.0)


@pytest.mark.parametrize("name", CONTINUATIONS)
def test_continuation_presets_start_from_the_shipped_weights_and_train_a_step(tmp_path, name):
    """Each continuation trains one step from the shipped weights; the texture ones log their
    feature-matching term and judge the final composite."""
    cfg = PRESETS[name]
    assert cfg.init_from == "pretrained:lgnet_compact" and cfg.optim.warmup_epochs > 0
    data = dataclasses.replace(cfg.data, root="synthetic:4", val_count=0)
    cfg = dataclasses.replace(cfg, data=data, masks=dataclasses.replace(cfg.masks, source="box"), batch_size=2, amp="none")
    trainer = Trainer(cfg, tmp_path)
    sample = next(iter(trainer._loader(0, 0)))
    shipped_model = create_model("lgnet_compact", pretrained=True)
    shipped = shipped_model.state_dict()
    transposed = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in shipped_model.modules())
    start = trainer.generator.state_dict()  # the shipped weights (resize-conv: all but the projected upsamplers)
    same = [key for key in shipped if start[key].shape == shipped[key].shape and torch.equal(start[key], shipped[key].float())]
    upsamplers = {n for n, m in trainer.generator.named_modules() if isinstance(m, ResizeConv2d)}
    assert len(upsamplers) == (transposed if cfg.model.kwargs.get("upsample") == "resize_conv" else 0)
    assert set(shipped) - set(same) == {f"{n}.weight" for n in upsamplers}
    logs = trainer.train_step(sample.image, sample.mask, sample.extras)
    assert torch.isfinite(logs["g/total"]) and torch.isfinite(logs["d/loss"])
    assert ("g/fm" in logs) == name.startswith("lgnet_compact_texture")


@pytest.mark.parametrize("row", sorted(ARCH_ROWS))
def test_architecture_rows_differ_only_in_the_generator_and_train_a_step(tmp_path, row):
    """The architecture choice (issue 23): one texture recipe, from scratch, with an lr decay; only the
    generator's name and width differ between rows."""
    assert ARCH == sorted(f"arch_{name}" for name in ARCH_ROWS)
    cfg = ARCH_ROWS[row]
    assert cfg.init_from is None and cfg.optim.schedule == "linear" and cfg.optim.epochs_decay > 0
    assert cfg.loss.feature_matching > 0 and cfg.loss.adv_input == "final_composite"
    reference = ARCH_ROWS["lgnet"]
    assert dataclasses.replace(cfg, model=reference.model) == reference
    assert cfg.model.discriminator == reference.model.discriminator
    data = dataclasses.replace(cfg.data, root="synthetic:4", val_count=0)
    cfg = dataclasses.replace(cfg, data=data, masks=dataclasses.replace(cfg.masks, source="box"), batch_size=2, amp="none")
    trainer = Trainer(cfg, tmp_path)
    sample = next(iter(trainer._loader(0, 0)))
    logs = trainer.train_step(sample.image, sample.mask, sample.extras)
    assert torch.isfinite(logs["g/total"]) and torch.isfinite(logs["g/fm"]) and torch.isfinite(logs["d/loss"])

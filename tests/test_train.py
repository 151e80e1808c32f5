"""Training engine: exact resume, checkpoints, schedules, EMA, clipping, AMP, logging, errors, CLI."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from toys import PatchD

from inpaintlab import InpaintlabError
from inpaintlab.checkpoint import load_checkpoint, load_model, sub_state
from inpaintlab.cli import main
from inpaintlab.config import (
    DataConfig,
    LossConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_config,
    save_config,
    to_dict,
)
from inpaintlab.models import is_model, register_discriminator, register_model
from inpaintlab.train import Trainer
from inpaintlab.types import SCALAR, InpaintModel, InpaintOutput, masked_input


class TwoStage(InpaintModel):
    """Coarse + refine conv nets (no BatchNorm), optional dropout (draws from the global torch RNG).

    Registered under a leading-underscore name, so the registry-wide contract test skips it.
    """

    size_multiple = 1

    def __init__(self, width: int = 8, dropout: float = 0.0, nan_after: int = -1):
        super().__init__()

        def net():
            layers = [
                nn.Conv2d(4, width, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Dropout(dropout),
                nn.Conv2d(width, 3, 3, padding=1),
            ]
            return nn.Sequential(*layers)

        self.g1, self.g2 = net(), net()
        self.nan_after, self.calls = nan_after, 0

    def forward(self, image, mask):
        x = masked_input(image, mask)
        s1 = torch.sigmoid(self.g1(torch.cat([x, mask], 1)))
        s2 = torch.sigmoid(self.g2(torch.cat([x + s1 * mask, mask], 1)))
        self.calls += self.training
        if 0 <= self.nan_after < self.calls:
            s2 = s2 * float("nan")
        return InpaintOutput(pred=s2, stages=(s1,))

    def param_groups(self):
        return {"G1": list(self.g1.parameters()), "G2": list(self.g2.parameters())}


if not is_model("_train_two_stage"):

    @register_model
    def _train_two_stage(width: int = 8, dropout: float = 0.0, nan_after: int = -1) -> nn.Module:
        return TwoStage(width, dropout, nan_after)

    @register_discriminator
    def _train_patch_d(ndf: int = 8) -> nn.Module:
        return PatchD(ndf)


def tiny_config(**changes) -> TrainConfig:
    cfg = TrainConfig(
        model=ModelConfig(name="_train_two_stage", kwargs={"dropout": 0.2}, discriminator="_train_patch_d"),
        data=DataConfig(root="synthetic:12", size=32, flip=True, val_count=0),
        masks=MaskConfig(source="box", val_source="box"),
        loss=LossConfig(hole=6.0, tv=0.1, adversarial=0.1, feature_outputs=(0, 1)),
        optim=OptimConfig(lr=1e-3, schedule="linear", epochs_constant=1, epochs_decay=2),
        batch_size=2,
        ema_decay=0.9,
        log_every=2,
        image_every=3,
        val_every=0,
        ckpt_every=0,
        keep_checkpoints=2,
    )
    return dataclasses.replace(cfg, **changes)


def test_resume_continues_the_same_trajectory_bit_for_bit(tmp_path):
    # Full LGNet-style loss (random VGG16); 6 batches per epoch; the cut at step 4 is mid-epoch and the
    # run crosses into epoch 1 (lr decay).
    loss = LossConfig(hole=6.0, tv=0.1, adversarial=0.1, perceptual=0.05, style=120, vgg_weights="random", feature_outputs=(1,))
    straight = Trainer(tiny_config(max_steps=8, loss=loss, ckpt_every=5), tmp_path / "a")
    straight.fit()
    Trainer(tiny_config(max_steps=4, loss=loss), tmp_path / "b").fit()
    first_half = tmp_path / "b" / "checkpoints" / "step_00000004.safetensors"
    resumed = Trainer(tiny_config(max_steps=8, loss=loss), tmp_path / "b", resume=first_half)
    assert (resumed.step, resumed.epoch, resumed.batch_index) == (4, 0, 4)
    resumed.fit()
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000008.safetensors")
    b, header = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000008.safetensors")
    assert header["epoch"] == 1 and header["batch_index"] == 2
    state_keys = [k for k in a if not k.startswith("rng.")]
    assert any(k.startswith("generator_ema.") for k in state_keys) and any(k.startswith("optim.G2.") for k in state_keys)
    for key in state_keys:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(a["rng.0.torch"], b["rng.0.torch"])
    # control: the trajectory is sensitive to the restored RNG state (dropout draws from the torch RNG)
    control = Trainer(tiny_config(max_steps=5, loss=loss), tmp_path / "c", resume=first_half)
    torch.manual_seed(123)
    control.fit()
    a5, _ = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000005.safetensors")
    c5, _ = load_checkpoint(tmp_path / "c" / "checkpoints" / "step_00000005.safetensors")
    assert not torch.equal(a5["generator.g2.0.weight"], c5["generator.g2.0.weight"])


def test_checkpoint_header_run_folder_and_logs(tmp_path):
    cfg = tiny_config(max_steps=5, ckpt_every=2)
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.safetensors"))
    assert ckpts == ["step_00000004.safetensors", "step_00000005.safetensors"]  # keep_checkpoints=2
    tensors, header = load_checkpoint(tmp_path / "checkpoints" / ckpts[-1])
    assert header["model"] == {"name": "_train_two_stage", "kwargs": {"dropout": 0.2}}
    assert header["config"] == to_dict(cfg) and header["step"] == 5
    assert set(header["optimizers"]) == {"G1", "G2", "discriminator"}
    for key, value in trainer.generator.state_dict().items():
        assert torch.equal(sub_state(tensors, "generator")[key], value)
    # load_model prefers the EMA weights
    model = load_model(tmp_path / "checkpoints" / ckpts[-1])
    for key, value in trainer.ema.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert load_config(tmp_path / "config.json") == cfg
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in lines] == [2, 4, 5]
    assert {"g/total", "g/hole", "g/style", "d/loss", "lr", "images_per_s"} <= set(lines[0])
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_separate_optimisers_partition_the_generator_and_follow_the_schedule(tmp_path):
    trainer = Trainer(tiny_config(max_steps=9), tmp_path)
    opts = trainer.optimizers
    assert set(opts) == {"G1", "G2", "discriminator"}
    g1 = {id(p) for p in opts["G1"].param_groups[0]["params"]}
    assert g1 == {id(p) for p in trainer.generator.g1.parameters()}
    for _ in range(9):
        trainer.train_step(*_batch(2))
        expected = 1e-3 * trainer.cfg.optim.lr_factor(trainer.step / trainer.steps_per_epoch)
        assert all(o.param_groups[0]["lr"] == pytest.approx(expected) for o in opts.values())
    # linear: constant for epochs_constant epochs, then to 0 over epochs_decay (6 steps per epoch)
    cfg = trainer.cfg
    assert [cfg.optim.lr_factor(s / 6) for s in (0, 5, 6, 9, 12, 18, 30)] == pytest.approx([1, 1, 1, 0.75, 0.5, 0, 0])
    step_optim = dataclasses.replace(cfg.optim, schedule="step", step_epochs=2, gamma=0.5)
    assert [step_optim.lr_factor(s / 6) for s in (0, 11, 12, 24)] == pytest.approx([1, 1, 0.5, 0.25])
    assert dataclasses.replace(cfg.optim, schedule="constant").lr_factor(1e6) == 1.0
    joint = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, separate_optimizers=False))
    single = Trainer(joint, tmp_path / "s")
    assert set(single.optimizers) == {"generator", "discriminator"}


def _batch(b, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), (torch.rand(b, 1, size, size, generator=g) > 0.7).float()


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_follows_its_recurrence_and_grad_clip_bounds_the_norm(tmp_path, warmup):
    """decay 0.8 every step; with ema_warmup min(0.8, (1 + t) / (10 + t)) at step t: 0.1, 0.18, 0.25."""
    cfg = tiny_config(ema_decay=0.8, ema_warmup=warmup, optim=dataclasses.replace(tiny_config().optim, grad_clip=0.05))
    trainer = Trainer(cfg, tmp_path)
    ema = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    for step in range(3):
        trainer.train_step(*_batch(2, seed=step))
        decay = (1 + step) / (10 + step) if warmup else 0.8
        for k, v in trainer.generator.state_dict().items():
            ema[k] = decay * ema[k] + (1 - decay) * v
        grads = [p.grad for p in trainer.generator.parameters()]
        assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 0.05 * (1 + 1e-4)
    for k, v in trainer.ema.state_dict().items():
        assert torch.allclose(v, ema[k], atol=1e-6), k


def test_discriminator_step_runs_before_the_generator_step(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path)
    d_before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    seen = []
    original = trainer.g_loss.discriminator.forward

    def spy(x):
        seen.append([p.detach().clone() for p in trainer.discriminator.parameters()])
        return original(x)

    trainer.g_loss.discriminator.forward = spy
    trainer.train_step(*_batch(2))
    # the G-step's D call already sees the updated D, and no D gradient is left from the G step
    assert not torch.equal(seen[-1][0], d_before[0])
    assert all(not p.requires_grad for p in trainer.discriminator.parameters())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step:UserWarning")  # fp16 scaler skips inf steps
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_on_cpu(tmp_path, amp):
    """The step really runs in the asked dtype: every convolution of G and D computes in it during
    training (an autocast that does nothing leaves them in float32), and the weights stay float32."""
    trainer = Trainer(tiny_config(amp=amp, max_steps=2, loss=LossConfig(hole=6.0, adversarial=0.1)), tmp_path)
    seen = {"generator": set(), "discriminator": set()}
    for name, module in (("generator", trainer.generator), ("discriminator", trainer.discriminator)):
        for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
            conv.register_forward_hook(lambda m, args, out, name=name: seen[name].add(out.dtype))
    logs = trainer.fit()
    asked = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert seen == {"generator": {asked}, "discriminator": {asked}}
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())
    assert np.isfinite(logs["g/total"])
    _, header = load_checkpoint(tmp_path / "checkpoints" / "step_00000002.safetensors")
    assert header["scaler"] == trainer.scaler.state_dict()
    assert trainer.scaler.is_enabled() == (amp == "fp16")


def test_validation_reports_metrics_by_hole_ratio_bin(tmp_path):
    cfg = tiny_config(max_steps=2, val_every=2, data=dataclasses.replace(tiny_config().data, val_count=4))
    trainer = Trainer(cfg, tmp_path)
    logs = trainer.fit()
    model = trainer.ema.eval()
    psnrs = []
    for i in range(4):
        s = trainer.val_set[i]
        with torch.no_grad():
            pred = model(s.image[None], s.mask[None]).pred.clamp(0, 1)
        comp = pred * s.mask + s.image * (1 - s.mask)
        psnrs.append(10 * np.log10(1 / ((comp - s.image) ** 2).mean().item()))
    assert logs["val/psnr"] == pytest.approx(np.mean(psnrs), rel=1e-4)
    assert any(k.startswith("val/(") for k in logs)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validated = [r["step"] for r in records if "val/psnr" in r]
    assert validated[0] == 0 and validated[-1] == trainer.step  # the curve starts at the untrained model
    for png in ("curves.png", "samples.png"):
        assert Image.open(tmp_path / png).size[0] > 100  # written for people to look at


def test_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InpaintlabError, match="no images"):
        Trainer(tiny_config(data=DataConfig(root=str(tmp_path / "empty"), size=32)), tmp_path / "r1")
    with pytest.raises(InpaintlabError, match="larger than the dataset"):
        Trainer(tiny_config(batch_size=13), tmp_path / "r2")
    with pytest.raises(InpaintlabError, match="mask (folder|source) .*empty has no"):
        Trainer(tiny_config(masks=MaskConfig(source=str(tmp_path / "empty"))), tmp_path / "r3")
    with pytest.raises(InpaintlabError, match="data.root"):
        Trainer(tiny_config(data=DataConfig(root="")), tmp_path / "r4")
    cfg = tiny_config(
        model=ModelConfig(name="_train_two_stage", kwargs={"nan_after": 3}), max_steps=6, ckpt_every=2, loss=LossConfig(hole=6.0)
    )
    with pytest.raises(InpaintlabError, match=r"at step 3.*step_00000002\.safetensors"):
        Trainer(cfg, tmp_path / "nan").fit()
    trainer = Trainer(tiny_config(max_steps=2), tmp_path / "oom")

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trainer, "train_step", out_of_memory)
    with pytest.raises(InpaintlabError, match="out of memory at step 0.*lower batch_size"):
        trainer.fit()


def test_cli_train_and_resume_auto(tmp_path, capsys):
    cfg = tiny_config(loss=LossConfig(hole=6.0, adversarial=0.1), ckpt_every=2)
    save_config(cfg, tmp_path / "tiny.toml")
    args = ["train", "--config", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main([*args, "--set", "max_steps=2"]) == 0
    assert main([*args, "--set", "max_steps=3", "--resume", "auto"]) == 0
    _, header = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000003.safetensors")
    assert header["step"] == 3 and header["config"]["max_steps"] == 3
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main([*args, "--set", "optim.lr=fast"]) == 2


def test_lgnet_tiny_builtin_preset_trains_and_validates(tmp_path):
    from inpaintlab.config import apply_overrides
    from inpaintlab.presets import get_preset

    cfg = apply_overrides(get_preset("lgnet_tiny_builtin"), ["max_steps=1", "data.val_count=2", "val_every=1"])
    trainer = Trainer(cfg, tmp_path)
    logs = trainer.fit()
    assert np.isfinite(logs["g/total"]) and logs["g/style"] > 0 and np.isfinite(logs["val/psnr"])
    assert load_model(tmp_path / "checkpoints" / "step_00000001.safetensors").model_name == "lgnet_tiny"


def test_lgnet_gets_one_optimiser_per_subnetwork(tmp_path):
    from inpaintlab.models import create_model

    groups = create_model("lgnet_tiny").param_groups()
    assert set(groups) == {"G1", "G2", "G3"}
    cfg = tiny_config(
        model=ModelConfig(name="lgnet_tiny", discriminator="lgnet_tiny"),
        data=DataConfig(root="synthetic:8", size=64, val_count=0),
        ema_decay=None,
    )
    trainer = Trainer(cfg, tmp_path)
    assert trainer.g_optimizer_names == ["G1", "G2", "G3"] and "discriminator" in trainer.optimizers
    owned = {name: {id(p) for group in opt.param_groups for p in group["params"]} for name, opt in trainer.optimizers.items()}
    assert owned["G1"] == {id(p) for p in trainer.generator.param_groups()["G1"]}
    assert set().union(*(owned[n] for n in ("G1", "G2", "G3"))) == {id(p) for p in trainer.generator.parameters()}


class SiameseRecorder(InpaintModel):
    """Declares ``mask2`` and ``target``: records what the trainer passes and returns aux terms built from them."""

    size_multiple = 1
    training_inputs = frozenset({"mask2", "target"})
    aux_terms = {"pair": SCALAR, "truth": SCALAR}

    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(4, 3, 3, padding=1)
        self.seen: list[dict] = []

    def forward(self, image, mask, mask2=None, target=None):
        self.seen.append({"image": image, "mask": mask, "mask2": mask2, "target": target})
        pred = torch.sigmoid(self.net(torch.cat([masked_input(image, mask), mask], 1)))
        aux = {}
        if self.training and mask2 is not None:
            pred2 = torch.sigmoid(self.net(torch.cat([masked_input(image, mask2), mask2], 1)))
            aux["pair"] = (pred - pred2).abs().mean()
        if self.training and target is not None:
            aux["truth"] = ((pred - target) ** 2).mean()
        return InpaintOutput(pred=pred, aux=aux)


if not is_model("_train_siamese"):

    @register_model
    def _train_siamese() -> nn.Module:
        return SiameseRecorder()


def test_declared_extra_inputs_get_a_second_mask_and_the_ground_truth(tmp_path):
    from inpaintlab.train import training_inputs

    cfg = tiny_config(
        model=ModelConfig(name="_train_siamese"),
        masks=MaskConfig(source="strokes", val_source="strokes"),
        loss=LossConfig(aux={"pair": 1.0, "truth": 1.0}),
        data=DataConfig(root="synthetic:12", size=64, val_count=0),
        max_steps=2,
        ema_decay=None,
    )
    trainer = Trainer(cfg, tmp_path)
    assert training_inputs(trainer.generator) == ("mask2", "target")
    assert training_inputs(TwoStage()) == ()
    trainer.fit()
    calls = [c for c in trainer.generator.seen if c["mask2"] is not None]
    assert len(calls) == 2
    for call in calls:
        assert torch.equal(call["target"], call["image"])  # the ground truth, not the hole-zeroed input
        assert call["mask2"].shape == call["mask"].shape and not torch.equal(call["mask2"], call["mask"])
    # mask and image are what the dataset gives without a second mask; mask2 is the source on a third stream
    from inpaintlab.data import ArrayDataset

    items = list(zip(trainer.train_set.names, trainer.train_set.arrays))
    plain = ArrayDataset(items, size=64, flip=True, mask_source=trainer.train_set.mask_source, seed=cfg.seed)
    plain.set_epoch(0)
    order = np.random.default_rng([cfg.seed, 0]).permutation(len(plain)).tolist()
    first = plain[order[0]]
    assert first.extras == {}
    assert torch.equal(calls[0]["mask"][0], first.mask) and torch.equal(calls[0]["image"][0], first.image)
    rng = np.random.default_rng([cfg.seed, 0, order[0]]).spawn(3)[2]
    assert torch.equal(calls[0]["mask2"][0], trainer.train_set.mask_source(rng).float())


def test_collate_samples_stacks_each_extra_input():
    from inpaintlab.data import collate_samples
    from inpaintlab.types import Sample

    with_pair = [
        Sample(torch.full((3, 4, 4), float(i)), torch.zeros(1, 4, 4), f"n{i}", {"mask2": torch.ones(1, 4, 4)}) for i in range(3)
    ]
    batch = collate_samples(with_pair)
    assert batch.image.shape == (3, 3, 4, 4) and batch.extras["mask2"].shape == (3, 1, 4, 4)
    assert list(batch.name) == ["n0", "n1", "n2"]
    assert torch.equal(batch.image[:, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert collate_samples([s._replace(extras={}) for s in with_pair]).extras == {}
    with pytest.raises(InpaintlabError, match="different extra inputs"):
        collate_samples([with_pair[0], with_pair[1]._replace(extras={})])


class EdgeRecorder(InpaintModel):
    """Declares a kind of input the shipped data path does not make (``edges``) and records it."""

    size_multiple = 1
    training_inputs = frozenset({"edges"})
    aux_terms = {"edge": SCALAR}

    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(4, 3, 3, padding=1)
        self.seen: list[dict] = []

    def forward(self, image, mask, edges=None):
        self.seen.append({"image": image, "edges": edges})
        pred = torch.sigmoid(self.net(torch.cat([masked_input(image, mask), mask], 1)))
        aux = {"edge": (pred.mean(1, keepdim=True) - edges).abs().mean()} if self.training else {}
        return InpaintOutput(pred=pred, aux=aux)


if not is_model("_train_edges"):

    @register_model
    def _train_edges() -> nn.Module:
        return EdgeRecorder()


def test_a_new_kind_of_input_touches_the_data_path_and_the_model_only(tmp_path, monkeypatch):
    """A model declaring an input the data path makes (one ``EXTRA_INPUTS`` entry) trains through the
    unchanged trainer; an input nobody makes is refused by name, before training."""
    from inpaintlab import data, train

    cfg = tiny_config(
        model=ModelConfig(name="_train_edges"),
        masks=MaskConfig(source="strokes", val_source="strokes"),
        loss=LossConfig(aux={"edge": 1.0}),
        data=DataConfig(root="synthetic:8", size=64, val_count=0),
        max_steps=1,
        ema_decay=None,
    )
    with pytest.raises(InpaintlabError, match="'edges'; the data path makes only mask2, target"):
        Trainer(cfg, tmp_path / "refused")
    edges = lambda dataset, image, rng: image.mean(0, keepdim=True).diff(dim=-1, prepend=image[:1, :, :1])  # noqa: E731
    monkeypatch.setitem(data.EXTRA_INPUTS, "edges", edges)
    monkeypatch.setattr(train, "TRAINING_INPUTS", frozenset(data.EXTRA_INPUTS))
    trainer = Trainer(cfg, tmp_path / "trained")
    trainer.fit()
    call = trainer.generator.seen[0]
    assert call["edges"].shape == (cfg.batch_size, 1, 64, 64)
    assert torch.equal(call["edges"][0], edges(None, call["image"][0], None))
    with pytest.raises(InpaintlabError, match="extra input 'edges', which the batch does not carry"):
        trainer.train_step(call["image"], torch.zeros_like(call["image"][:, :1]))


def test_discriminator_lr_scale_and_validation_groups(tmp_path):
    cfg = tiny_config(
        optim=OptimConfig(lr=1e-3, d_lr_scale=0.1),
        max_steps=1,
        val_every=1,
        data=dataclasses.replace(tiny_config().data, val_count=4, size=64),
        masks=MaskConfig(source="box", val_source="strokes", val_bins=((0.0, 0.3), (0.3, 0.6))),
    )
    trainer = Trainer(cfg, tmp_path)
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert all(trainer.optimizers[n].param_groups[0]["lr"] == pytest.approx(1e-3) for n in trainer.g_optimizer_names)
    explicit = Trainer(dataclasses.replace(cfg, optim=OptimConfig(lr=1e-3, d_lr=5e-4, d_lr_scale=0.1)), tmp_path / "b")
    assert explicit.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(5e-4)  # d_lr wins
    logs = trainer.fit()
    groups = {k.split("/")[1] for k in logs if k.startswith("val/(")}
    assert groups and groups <= {"(0,0.3]", "(0.3,0.6]"}


def test_init_from_starts_a_fine_tuning_run_from_trained_weights(tmp_path):
    """MSA-Net's second stage: G and D weights from a checkpoint, fresh optimisers, step 0."""
    first = Trainer(tiny_config(max_steps=3), tmp_path / "first")
    first.fit()
    ckpt = first.last_checkpoint
    tuned = Trainer(tiny_config(max_steps=2, init_from=str(ckpt), optim=OptimConfig(lr=5e-5)), tmp_path / "tuned")
    assert tuned.step == 0 and all(not opt.state for opt in tuned.optimizers.values())
    for mine, theirs in (
        (tuned.generator, first.generator),
        (tuned.ema, first.generator),
        (tuned.discriminator, first.discriminator),
    ):
        for key, value in theirs.state_dict().items():
            assert torch.equal(mine.state_dict()[key], value), key
    tuned.fit()
    other = dataclasses.replace(
        tiny_config(), model=ModelConfig(name="lgnet_tiny"), data=DataConfig(root="synthetic:4", size=64, val_count=0)
    )
    with pytest.raises(InpaintlabError, match="generator weights do not fit lgnet_tiny"):
        Trainer(dataclasses.replace(other, init_from=str(ckpt)), tmp_path / "wrong")


def test_color_jitter_reaches_training_images_and_never_validation(tmp_path):
    jitter = (0.1, 0.1, 0.1, 0.05)
    cfg = tiny_config(data=DataConfig(root="synthetic:12", size=32, flip=True, val_count=4, color_jitter=jitter))
    trainer = Trainer(cfg, tmp_path)
    assert trainer.train_set.color_jitter == jitter and trainer.val_set.color_jitter == (0, 0, 0, 0)
    plain = Trainer(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, color_jitter=(0, 0, 0, 0))), tmp_path / "p")
    a, b = trainer.train_set[0], plain.train_set[0]
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.image, b.image)


def test_init_pretrained_starts_from_exactly_the_shipped_weights_with_a_fresh_d_and_a_warm_up(tmp_path):
    """``train --init pretrained:lgnet_compact`` (the continuation preset): G and its EMA hold exactly the
    shipped fp16 weights, D and the optimisers start fresh at step 0, and the lr rises from 0."""
    from safetensors.torch import load_file

    from inpaintlab.presets import resolve_train_config
    from inpaintlab.pretrained import WEIGHTS_DIR

    cfg, _ = resolve_train_config(
        "lgnet_compact_continue",
        None,
        ["data.root=synthetic:4", "data.val_count=0", "batch_size=2", "masks.source=box", "init_from=pretrained:lgnet_compact"],
        amp="none",
    )
    assert cfg.amp == "none" and cfg.init_from == "pretrained:lgnet_compact"
    trainer = Trainer(cfg, tmp_path / "continue")
    shipped = load_file(str(WEIGHTS_DIR / "lgnet_compact.safetensors"))
    for module in (trainer.generator, trainer.ema):
        state = module.state_dict()
        assert state.keys() == shipped.keys()
        for key, value in shipped.items():
            assert torch.equal(state[key], value.to(state[key].dtype)), key
    assert trainer.generator.training and trainer.step == 0
    assert all(not opt.state for opt in trainer.optimizers.values())
    lrs = [opt.param_groups[0]["lr"] for opt in trainer.optimizers.values()]
    assert lrs == [0.0] * len(lrs)  # warm-up: the lr starts at 0 and reaches optim.lr after warmup_epochs
    assert cfg.optim.lr_factor(cfg.optim.warmup_epochs / 2) == pytest.approx(0.5)
    assert cfg.optim.lr_factor(cfg.optim.warmup_epochs) == 1.0
    with pytest.raises(InpaintlabError, match="holds lgnet_compact weights; this run trains '_train_two_stage'"):
        Trainer(tiny_config(init_from="pretrained:lgnet_compact"), tmp_path / "wrong")


def test_validation_on_training_images_is_said_and_labelled(tmp_path):
    """Issue 20 item 9: a folder as data.root and no data.val_root validated on training images in silence
    (the README's lgnet_celebahq example). Now a warning says so and the numbers are val_train/*."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = tiny_config(max_steps=2, val_every=2, data=DataConfig(root=str(folder), size=32, val_count=2))
    with pytest.warns(UserWarning, match="validation runs on training images"):
        trainer = Trainer(cfg, tmp_path / "run")
    logs = trainer.fit()
    assert "val_train/psnr" in logs and "val/psnr" not in logs
    held_out = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_root=str(folder)))
    assert "val/psnr" in Trainer(held_out, tmp_path / "run2").fit()  # a named validation set is val/*


def test_training_masks_with_no_hole_or_all_hole_are_counted_and_said(tmp_path):
    """Issue 20 item 10: such masks trained in silence. A warning at the first, the counts in summary.json."""
    cfg = tiny_config(max_steps=2)
    trainer = Trainer(cfg, tmp_path / "run")
    image = torch.rand(2, 3, 32, 32)
    masks = torch.zeros(2, 1, 32, 32)
    masks[1] = 1.0  # one without hole, one all hole
    with pytest.warns(UserWarning, match="training mask\\(s\\) with no hole"):
        trainer.train_step(image, masks)
    assert trainer.degenerate_masks == {"no hole": 1, "all hole": 1}
    trainer.fit()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["degenerate_masks"]["no hole"] >= 1

"""Checkpoints written before the declared model contract (commit e7dec03) still load everywhere.

``fixtures/checkpoint_e7dec03_lgnet_tiny.safetensors`` is one step of ``lgnet_tiny_builtin`` with
kwargs ``ngf_unet=2, ngf_local=2, num_downs=5, attention_levels=[3, 2]`` and ``discriminator_kwargs
ndf=2``, written by that commit's trainer (header ``"model": {"name", "kwargs"}``, EMA weights included).
"""

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from inpaintlab import InpaintPipeline, cli, create_model, load_model
from inpaintlab.checkpoint import load_checkpoint, verify_checkpoint
from inpaintlab.state_dict import load_weights
from inpaintlab.types import ModelSpec

OLD = Path(__file__).parent / "fixtures" / "checkpoint_e7dec03_lgnet_tiny.safetensors"
OLD_KWARGS = {"ngf_unet": 2, "ngf_local": 2, "num_downs": 5, "attention_levels": [3, 2]}


def test_the_old_checkpoint_loads_with_its_spec():
    _, header = load_checkpoint(OLD)
    assert header["model"] == {"name": "lgnet_tiny", "kwargs": OLD_KWARGS}
    model = load_model(OLD)
    assert model.spec == ModelSpec("lgnet_tiny", OLD_KWARGS) and model.model_name == "lgnet_tiny"
    assert model.checkpoint_header["step"] == 1 and not model.training
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1
    with torch.no_grad():
        assert torch.isfinite(model(image, mask).pred).all()


def test_the_old_checkpoint_answers_through_the_pipeline():
    pipe = InpaintPipeline.from_checkpoint(OLD)
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:25, 12:30] = 255
    out = np.asarray(pipe(image, mask))
    assert out.shape == image.shape and np.array_equal(out[mask == 0], image[mask == 0])


def test_the_old_checkpoint_evaluates_from_the_cli(tmp_path):
    assert (
        cli.main(
            [
                "eval",
                "--checkpoint",
                str(OLD),
                "--images",
                "synthetic:2",
                "--size",
                "32",
                "--out",
                str(tmp_path),
                "--metrics",
                "l1",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    report = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert "lgnet_tiny" in json.dumps(report)


def test_the_old_checkpoint_ships(tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"summary": "fixture", "inference_size": 32}))
    assert cli.main(["ship", str(OLD), "--card", str(card), "--out", str(tmp_path / "weights")]) == 0
    shipped = json.loads((tmp_path / "weights" / "lgnet_tiny.json").read_text())
    assert shipped["model"] == {"name": "lgnet_tiny", "kwargs": OLD_KWARGS}
    model = create_model("lgnet_tiny", **OLD_KWARGS)
    state = {k: v.float() for k, v in load_file(str(tmp_path / "weights" / "lgnet_tiny.safetensors")).items()}
    load_weights(model, state, "shipped fixture", "lgnet_tiny")


def test_the_old_checkpoint_verifies():
    header, hashed = verify_checkpoint(OLD)
    assert hashed and header["model"]["name"] == "lgnet_tiny"


def test_a_run_resumes_from_the_old_checkpoint(tmp_path):
    import dataclasses

    from inpaintlab.config import TrainConfig, from_dict
    from inpaintlab.train import Trainer

    _, header = load_checkpoint(OLD)
    cfg = from_dict(TrainConfig, header["config"])
    cfg = dataclasses.replace(cfg, max_steps=2, ckpt_every=0)
    trainer = Trainer(cfg, tmp_path / "run", resume=OLD)
    assert trainer.step == 1 and trainer.generator.spec == ModelSpec("lgnet_tiny", OLD_KWARGS)
    trainer.fit()
    assert trainer.step == 2
    _, new_header = load_checkpoint(trainer.last_checkpoint)
    assert new_header["model"] == header["model"]  # the spec is written in the same layout

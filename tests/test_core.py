"""Core types, registry and checkpoint format."""

import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

import inpaintlab
from inpaintlab import InpaintlabError, composite, create_model, list_models
from inpaintlab.checkpoint import load_checkpoint, load_model, read_header, save_checkpoint
from inpaintlab.models import register_model
from inpaintlab.types import InpaintModel, InpaintOutput, Sample, check_image_mask


def test_composite_takes_hole_from_pred_and_rest_from_image():
    g = torch.Generator().manual_seed(0)
    image, pred = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    out = composite(pred, image, mask)
    hole = mask.expand_as(image).bool()
    assert torch.equal(out[hole], pred[hole])
    assert torch.equal(out[~hole], image[~hole])


def test_outputs_orders_stages_then_pred():
    a, b, c = (torch.full((1, 3, 2, 2), v) for v in (0.1, 0.2, 0.3))
    assert InpaintOutput(pred=c, stages=(a, b)).outputs == (a, b, c)


def test_samples_collate_into_a_batch():
    from inpaintlab.data import collate_samples

    batch = collate_samples([Sample(torch.zeros(3, 4, 4), torch.ones(1, 4, 4), f"n{i}") for i in range(3)])
    assert batch.image.shape == (3, 3, 4, 4) and batch.mask.shape == (3, 1, 4, 4)
    assert list(batch.name) == ["n0", "n1", "n2"]


@pytest.mark.parametrize(
    "image,mask,fragment",
    [
        (torch.rand(3, 8, 8), torch.zeros(1, 1, 8, 8), "(B,3,H,W)"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), "(B,1,H,W)"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 4, 8), "differ"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "floating"),
    ],
)
def test_check_image_mask_explains_the_problem(image, mask, fragment):
    with pytest.raises(InpaintlabError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_image_mask(image, mask)


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(InpaintlabError, match="unknown model 'telea_x'"):
        create_model("telea_x")
    with pytest.raises(InpaintlabError, match="has no option 'radiuss'"):
        create_model("telea", radiuss=3)
    assert {"telea", "navier_stokes"} <= set(list_models())
    assert list_models("nav*") == ["navier_stokes"]


class _Tiny(InpaintModel):
    size_multiple = 1

    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)
        self.register_buffer("counter", torch.zeros(width))

    def forward(self, image, mask):
        x = image * (1 - mask)
        return InpaintOutput(pred=torch.sigmoid(self.conv(torch.cat([x, mask], 1))))


@register_model
def _test_core_tiny(width: int = 4) -> nn.Module:
    return _Tiny(width)


def test_checkpoint_roundtrip_rebuilds_model_from_file_alone(tmp_path):
    torch.manual_seed(0)
    model = create_model("_test_core_tiny", width=5)
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(
        tmp_path / "ck.safetensors", state, {"model": {"name": "_test_core_tiny", "kwargs": {"width": 5}}, "step": 7}
    )
    header = read_header(path)
    assert header["step"] == 7 and header["code_version"] == inpaintlab.__version__
    loaded = load_model(path)
    assert not loaded.training and loaded.counter.numel() == 5
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    tensors, _ = load_checkpoint(path)
    assert set(tensors) == set(state)


def test_checkpoint_prefers_ema_weights(tmp_path):
    model = create_model("_test_core_tiny")
    ema = {k: v + 1 for k, v in model.state_dict().items()}
    tensors = {
        **{f"generator.{k}": v for k, v in model.state_dict().items()},
        **{f"generator_ema.{k}": v for k, v in ema.items()},
    }
    path = save_checkpoint(tmp_path / "ck.safetensors", tensors, {"model": {"name": "_test_core_tiny", "kwargs": {}}})
    assert torch.equal(load_model(path).conv.weight, ema["conv.weight"])
    assert torch.equal(load_model(path, ema=False).conv.weight, model.conv.weight)


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(InpaintlabError, match="checkpoint not found"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InpaintlabError, match="junk.safetensors: cut short"):  # the bytes are checked first
        load_model(junk)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path):
    """Kill a process in the middle of save_checkpoint: the old file must still load intact."""
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"generator.w": torch.arange(10.0)}, {"model": {"name": "x"}, "step": 1})
    script = f"""
import os, signal, torch, safetensors.torch as st
from inpaintlab.checkpoint import save_checkpoint
real = st.save_file
def dying(*a, **k):
    real(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)   # die after writing the temp file, before the rename
st.save_file = dying
import inpaintlab.checkpoint as c
c.save_file = dying
save_checkpoint({str(path)!r}, {{"generator.w": torch.zeros(1000)}}, {{"step": 2}})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)  # killed, not an import error
    tensors, header = load_checkpoint(path)
    assert header["step"] == 1 and torch.equal(tensors["generator.w"], torch.arange(10.0))


def test_cli_models_lists_registry(capsys):
    from inpaintlab.cli import main

    assert main(["models"]) == 0
    assert "telea" in capsys.readouterr().out


def test_load_checkpoint_reads_only_the_requested_prefixes(tmp_path):
    """Inference reads the generator, not the (much larger) optimiser state."""
    tensors = {"generator.w": torch.ones(2), "generator_ema.w": torch.zeros(2), "optim.G1.0.exp_avg": torch.ones(9)}
    path = save_checkpoint(tmp_path / "ck.safetensors", tensors, {"step": 1})
    only, _ = load_checkpoint(path, prefixes=("generator",))
    assert set(only) == {"generator.w"}
    assert set(load_checkpoint(path)[0]) == set(tensors)


def test_verify_checkpoint_checks_header_sizes_and_content_hash(tmp_path):
    """Every save writes a content hash; verification reads the bytes back and names what is wrong."""
    import json

    from safetensors.torch import save_file

    from inpaintlab.checkpoint import content_hash, verify_checkpoint

    tensors = {
        "generator.w": torch.arange(12.0).reshape(3, 4),
        "rng.0.torch": torch.arange(5, dtype=torch.uint8),
        "b": torch.ones(2, dtype=torch.bfloat16),
        "flag": torch.tensor(True),
        "empty": torch.zeros(0),
    }
    path = save_checkpoint(tmp_path / "ck.safetensors", tensors, {"step": 3})
    header, hashed = verify_checkpoint(path)
    assert hashed and header["content_sha256"] == content_hash(tensors) and header["step"] == 3
    data = path.read_bytes()
    cases = {
        "half": data[: len(data) // 2],
        "header only": data[:40],
        "zero": b"",
        "extra": data + b"\0",
        "flipped": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
    }
    reasons = {
        "half": "cut short",
        "header only": "cut short",
        "zero": "too short",
        "extra": "trailing bytes",
        "flipped": "content hash mismatch",
    }
    for case, damaged in cases.items():
        bad = tmp_path / f"{case}.safetensors"
        bad.write_bytes(damaged)
        with pytest.raises(InpaintlabError, match=reasons[case]):
            verify_checkpoint(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign))
    with pytest.raises(InpaintlabError, match="not an inpaintlab checkpoint"):
        verify_checkpoint(foreign)
    old = tmp_path / "old.safetensors"  # written before content hashes: readable, reported as unverified
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(old),
        metadata={"inpaintlab": json.dumps({"format": "inpaintlab-checkpoint", "version": 1, "step": 3})},
    )
    assert verify_checkpoint(old)[1] is False

"""Export: ONNX run in onnxruntime and TorchScript reloaded, each compared with PyTorch on the same
inputs; classical models refuse with a clear error.

lgnet_tiny (untrained, seeded) goes through the legacy ONNX exporter and TorchScript; the
torch.export-based ONNX exporter (the default) is checked on a small conv model, because tracing
lgnet_tiny with dynamic shapes takes ~45 s of CPU on this machine.
"""

import numpy as np
import pytest
import torch
from torch import nn

from inpaintlab import cli
from inpaintlab.checkpoint import save_checkpoint
from inpaintlab.errors import InpaintlabError
from inpaintlab.export import export_model
from inpaintlab.models import create_model
from inpaintlab.types import InpaintModel, InpaintOutput, masked_input


class SmallConvGenerator(InpaintModel):
    """A two-layer encoder/decoder with the generator contract; H and W must be multiples of 4."""

    size_multiple = 4

    def __init__(self):
        super().__init__()
        self.encode = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.decode = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, image, mask):
        features = torch.relu(self.encode(torch.cat([masked_input(image, mask), mask], dim=1)))
        return InpaintOutput(pred=torch.sigmoid(self.decode(features)))


def inputs(batch, height, width, seed):
    """Seeded image in [0,1] and a random binary mask (about 30% hole)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=generator)
    mask = (torch.rand(batch, 1, height, width, generator=generator) > 0.7).float()
    return image, mask


def assert_onnx_matches(model, path, shape, seed):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "mask"]
    image, mask = inputs(*shape, seed=seed)
    with torch.no_grad():
        expected = model(image, mask).pred.numpy()
    (got,) = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 0.1  # a real output, not an all-zero graph


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("lgnet_tiny").eval()


def test_default_onnx_export_has_dynamic_batch_and_size(tmp_path):
    torch.manual_seed(0)
    model = SmallConvGenerator().eval()
    path = export_model(model, tmp_path / "small.onnx", "onnx", size=32)
    for seed, shape in enumerate([(1, 32, 32), (3, 48, 20)]):
        assert_onnx_matches(model, path, shape, seed)


def test_lgnet_tiny_onnx_matches_pytorch_at_another_batch_and_width(tiny, tmp_path):
    path = export_model(tiny, tmp_path / "tiny.onnx", "onnx", size=64, dynamo=False)
    assert_onnx_matches(tiny, path, (2, 64, 128), seed=1)  # traced at (1, 64, 64)


def test_export_cli_torchscript_from_a_checkpoint_matches_pytorch(tiny, tmp_path):
    tensors = {f"generator.{k}": v for k, v in tiny.state_dict().items()}
    header = {"model": {"name": "lgnet_tiny", "kwargs": {}}}
    checkpoint = save_checkpoint(tmp_path / "tiny.safetensors", tensors, header)
    out = tmp_path / "exported" / "tiny.pt"
    args = ["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "-o", str(out), "--size", "64"]
    assert cli.main(args) == 0
    image, mask = inputs(1, 64, 64, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(image, mask), tiny(image, mask).pred, atol=1e-6, rtol=0)


def test_classical_models_and_unknown_formats_are_clear_errors(tmp_path, capsys):
    with pytest.raises(InpaintlabError, match="cannot be exported"):
        export_model(create_model("telea"), tmp_path / "t.onnx", "onnx")
    with pytest.raises(InpaintlabError, match="unknown export format"):
        export_model(SmallConvGenerator(), tmp_path / "t.tflite", "tflite")
    assert cli.main(["export", "--model", "navier_stokes", "--format", "onnx", "-o", str(tmp_path / "n.onnx")]) == 2
    assert "cannot be exported" in capsys.readouterr().err
    assert not (tmp_path / "n.onnx").exists()

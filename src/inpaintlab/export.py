"""Export a generator to ONNX or TorchScript with ``forward(image, mask) -> pred``.

image: (B,3,H,W) float32 in [0,1]; mask: (B,1,H,W) float32 in {0,1}, 1 = hole; pred: (B,3,H,W), the
generator's raw prediction (not composited: do ``pred*mask + image*(1-mask)`` yourself, as the
pipeline does). ONNX graphs have dynamic batch, height and width where the model allows (H and W must
still be multiples of the model's ``size_multiple``); the TorchScript module is traced at the example
size, so shape-dependent Python branches are fixed at that size.

Choice: ONNX uses the ``torch.export``-based exporter (``dynamo=True``, needs ``onnxscript``), the one
PyTorch keeps; ``dynamo=False`` selects the deprecated TorchScript-based exporter for models the new one
cannot trace.
"""

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .bench import bench_inputs
from .errors import InpaintlabError
from .types import contract_of

FORMATS = ("onnx", "torchscript")


class PredictionOnly(nn.Module):
    """Wraps a generator so ``forward(image, mask)`` returns only ``InpaintOutput.pred`` (B,3,H,W)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.generator(image, mask).pred


def example_inputs(size: int, multiple: int = 1, batch: int = 1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``bench_inputs`` at S = ``size`` rounded up to ``multiple``: seeded image (B,3,S,S) in [0,1] and mask
    (B,1,S,S) with a centred square hole of side S/2."""
    return bench_inputs(-(-size // multiple) * multiple, batch, seed=seed)


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: str = "onnx",
    size: int = 256,
    opset: int = 18,
    dynamo: bool = True,
) -> Path:
    """Write ``model`` (a generator) to ``path`` as ``fmt`` (``onnx`` | ``torchscript``); returns the path.

    size: side of the example input used for tracing (rounded up to ``model.size_multiple``).
    Classical (OpenCV) models have no tensor graph and raise ``InpaintlabError``.
    """
    if fmt not in FORMATS:
        raise InpaintlabError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    contract = contract_of(model)
    if not contract.exportable:
        raise InpaintlabError(f"{contract.model_name} is a classical (OpenCV) model with no tensor graph; it cannot be exported")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = PredictionOnly(model.cpu().eval()).eval()
    inputs = example_inputs(size, contract.size_multiple)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks, documented above
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        if fmt == "torchscript":
            torch.jit.trace(wrapper, inputs, check_trace=False).save(str(path))
        else:
            _export_onnx(wrapper, inputs, path, opset, dynamo)
    return path


def _export_onnx(wrapper: nn.Module, inputs: tuple[Tensor, Tensor], path: Path, opset: int, dynamo: bool) -> None:
    names = {"input_names": ["image", "mask"], "output_names": ["pred"], "opset_version": opset}
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise InpaintlabError("ONNX export needs onnxscript: pip install 'inpaintlab[export]'") from None
        auto = torch.export.Dim.AUTO
        shapes = {"image": {0: auto, 2: auto, 3: auto}, "mask": {0: auto, 2: auto, 3: auto}}
        program = torch.onnx.export(
            wrapper, inputs, dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False, **names
        )
        program.save(str(path))
    else:
        axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ("image", "mask", "pred")}
        torch.onnx.export(wrapper, inputs, str(path), dynamo=False, dynamic_axes=axes, **names)


__all__ = ["FORMATS", "PredictionOnly", "example_inputs", "export_model"]

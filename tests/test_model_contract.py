"""Every registered generator honours the DESIGN.md contract (timm-style test over the registry)."""

import pytest
import torch

from inpaintlab import create_model, list_models
from inpaintlab.types import InpaintOutput

MODELS = [m for m in list_models() if not m.startswith("_")]


def _inputs(model, seed=0):
    size = max(getattr(model, "size_multiple", 1), 64)
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : size // 2, size // 3 : 3 * size // 4] = 1
    return image, mask, g


@pytest.mark.parametrize("name", MODELS)
def test_contract(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    image, mask, g = _inputs(model)
    with torch.no_grad():
        out = model(image, mask)
        noisy = image + mask * torch.rand(image.shape, generator=g)  # garbage inside the hole only
        out_noisy = model(noisy, mask)
    assert isinstance(out, InpaintOutput)
    for t in out.outputs:
        assert t.shape == image.shape and t.dtype == image.dtype
        assert torch.isfinite(t).all()
    assert out.pred.min() >= -1e-6 and out.pred.max() <= 1 + 1e-6, "pred must be in [0,1]"
    # The first thing a generator does is zero the hole: noise in the hole cannot change anything.
    assert torch.allclose(out.pred, out_noisy.pred, atol=1e-6)

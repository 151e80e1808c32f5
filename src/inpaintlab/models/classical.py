"""Classical (non-learned) baselines with the generator interface: OpenCV Telea and Navier-Stokes.

They run per image on uint8 copies (OpenCV's API), so outputs are quantised to 1/255. They have no
parameters (``trainable = False``) and accept any H x W (``size_multiple = 1``).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import InpaintlabError
from ..types import InpaintModel, InpaintOutput, check_image_mask, masked_input
from ._registry import build, register_model


class OpenCVInpaint(InpaintModel):
    """``cv2.inpaint`` as a module. image (B,3,H,W) in [0,1], mask (B,1,H,W) 1 = hole."""

    trainable = False
    exportable = False  # no tensor graph to trace
    size_multiple = 1

    def __init__(self, method: int, radius: int = 3):
        super().__init__()
        if radius < 1:
            raise InpaintlabError(f"radius must be >= 1, got {radius}")
        self.method = method
        self.radius = radius

    @torch.no_grad()
    def forward(self, image: Tensor, mask: Tensor) -> InpaintOutput:
        check_image_mask(image, mask)
        image = masked_input(image, mask)
        rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        holes = (mask[:, 0] > 0.5).to(torch.uint8).cpu().numpy() * 255
        out = np.stack(
            [cv2.inpaint(np.ascontiguousarray(r), np.ascontiguousarray(h), self.radius, self.method) for r, h in zip(rgb, holes)]
        )
        pred = torch.from_numpy(out).permute(0, 3, 1, 2).to(image.device, image.dtype) / 255.0
        return InpaintOutput(pred=pred)


@register_model
def telea(**options) -> OpenCVInpaint:
    """Telea (2004) fast-marching inpainting (``cv2.INPAINT_TELEA``); option ``radius`` (default 3)."""
    return build(OpenCVInpaint, options, fixed={"method": cv2.INPAINT_TELEA})


@register_model
def navier_stokes(**options) -> OpenCVInpaint:
    """Bertalmio et al. (2001) Navier-Stokes inpainting (``cv2.INPAINT_NS``); option ``radius`` (default 3)."""
    return build(OpenCVInpaint, options, fixed={"method": cv2.INPAINT_NS})


CLASSICAL_MODELS = ("telea", "navier_stokes")  # registered methods with nothing to learn

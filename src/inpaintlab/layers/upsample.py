"""x2 upsampling layers: the transposed convolution and its checkerboard-free resize-convolution.

A stride-2 transposed convolution gives even and odd output pixels their own kernels, so it can (and under
adversarial gradients does) draw a fixed 2-pixel grid: the checkerboard of Odena et al. 2016, "Deconvolution
and Checkerboard Artifacts". ``ResizeConv2d`` upsamples by nearest neighbour and then convolves (3x3), so
every output pixel is made by the same kernel. ``resize_conv_weight`` maps trained transposed weights onto
it (least squares), so a trained network can switch and be fine-tuned instead of trained from scratch.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLING = ("transposed", "resize_conv")


class ResizeConv2d(nn.Conv2d):
    """Nearest x2 upsampling, then a zero-padded ``kernel_size`` convolution (stride 1, same size).

    (B,in_channels,H,W) -> (B,out_channels,2H,2W). A ``Conv2d`` subclass, so weight init and state-dict
    keys treat it like the layer it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


def upsample2x(
    kind: str, in_channels: int, out_channels: int, kernel_size: int, padding: int, output_padding: int = 0, bias: bool = True
) -> nn.Module:
    """A x2 upsampling layer: ``ConvTranspose2d(kernel_size, stride 2, padding, output_padding)`` for
    "transposed", ``ResizeConv2d`` (3x3) for "resize_conv"; both map (B,in,H,W) -> (B,out,2H,2W)."""
    if kind == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, padding, output_padding, bias=bias)
    if kind == "resize_conv":
        return ResizeConv2d(in_channels, out_channels, 3, bias=bias)
    raise ValueError(f"upsample must be one of {UPSAMPLING}, got {kind!r}")


@functools.cache
def _phase_projection(kernel_size: int, padding: int, output_padding: int) -> Tensor:
    """(k*k, 9) matrix P with ``resize_conv 3x3 weight = transposed k x k weight @ P`` (per channel pair).

    Both layers are linear and periodic with period 2 in the output, so each is described by its response to
    one interior impulse. Columns of ``R`` / ``C`` are the 1-D responses of the resize-conv's 3 taps / the
    transposed kernel's k taps; the 2-D responses are Kronecker products, and P solves ``R2 w = C2 t`` in
    the least-squares sense: the resize-conv whose output is closest to the transposed convolution's.
    """
    length = 8  # input samples; the impulse sits in the middle, far from the borders
    impulse = torch.zeros(1, 1, length, dtype=torch.float64)
    impulse[..., length // 2] = 1.0
    eye_t, eye_r = torch.eye(kernel_size, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    C = torch.stack(
        [
            F.conv_transpose1d(
                impulse, eye_t[k].view(1, 1, -1), stride=2, padding=padding, output_padding=output_padding
            ).flatten()
            for k in range(kernel_size)
        ],
        1,
    )
    up = F.interpolate(impulse, scale_factor=2, mode="nearest")
    R = torch.stack([F.conv1d(up, eye_r[t].view(1, 1, -1), padding=1).flatten() for t in range(3)], 1)
    C2, R2 = torch.kron(C, C), torch.kron(R, R)  # 2-D responses (4L*L, k*k) and (4L*L, 9), row-major taps
    return (torch.linalg.pinv(R2) @ C2).T.contiguous()  # (k*k, 9)


def resize_conv_weight(layer: nn.ConvTranspose2d) -> Tensor:
    """The 3x3 ``ResizeConv2d`` weight (out,in,3,3) closest (least squares, per channel pair) to a stride-2
    ``ConvTranspose2d``'s weight (in,out,k,k). Exact when the transposed layer has no checkerboard part,
    e.g. any k=4, padding=1 layer made from a resize-conv. The bias carries over unchanged."""
    if layer.stride != (2, 2) or layer.groups != 1 or layer.dilation != (1, 1) or layer.kernel_size[0] != layer.kernel_size[1]:
        raise ValueError(f"only square stride-2 transposed convolutions map onto a resize-conv, got {layer}")
    k = layer.kernel_size[0]
    projection = _phase_projection(k, layer.padding[0], layer.output_padding[0])
    t = layer.weight.detach().to(torch.float64)  # (in, out, k, k)
    w = t.flatten(2) @ projection  # (in, out, 9)
    return w.view(t.shape[0], t.shape[1], 3, 3).transpose(0, 1).contiguous().to(layer.weight.dtype)


__all__ = ["UPSAMPLING", "ResizeConv2d", "resize_conv_weight", "upsample2x"]

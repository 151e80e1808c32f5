"""Partial convolution (Liu et al., ECCV 2018) with the semantics of NVIDIA's ``PartialConv2d``.

Per output window with ``count`` known mask entries out of ``slide_winsize`` (MSA-Net Eqs. 1-5):

    out      = W^T (x * valid) * slide_winsize / count + b      where count > 0
    out      = 0                                               where count == 0 (the bias too)
    new_hole = 0 where count > 0 else 1

``slide_winsize`` is ``in_channels * kh * kw`` in multi-channel mode (the mask has one channel per input
channel) and ``kh * kw`` otherwise. Zero padding is treated as hole, so border windows are renormalised
too. The mask update and the ratio are computed without gradient in float32 (float64 for float64 inputs)
with autocast disabled, so the ``eps`` of the ratio cannot underflow under fp16/bf16 autocast.

Differences from NVIDIA's module, all deliberate: the mask follows the project's polarity (**1 = hole**;
flipped inside), the updated mask is always returned, masks are never cached between calls (the module
is stateless), and the mask "convolution" with an all-ones ``[out, in, kh, kw]`` kernel is computed as a
channel sum followed by one ``kh x kw`` box sum, which gives the same integer counts at ~1/C_out of the cost.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PartialConv2d(nn.Conv2d):
    """``nn.Conv2d`` that ignores hole inputs and renormalises by the known fraction of each window.

    forward(x (B,C_in,H,W), hole (B,C_in|1,H,W) or None, 1 = hole) -> (out (B,C_out,H',W'), new_hole).
    ``new_hole`` is (B,C_out,H',W') in multi-channel mode (all channels equal; an expanded view) and
    (B,1,H',W') otherwise. ``hole=None`` means every pixel is known (only the padding counts as hole).
    Skip connections: ``x`` may be a list of channel parts (concatenated in order) with a list of hole
    masks, one per part ((B,1|C_i,H,W) or None), which equals concatenating features and masks
    separately (NVIDIA's U-Net) without building the full multi-channel mask.
    ``eps`` is NVIDIA's 1e-8 in ``slide_winsize / (count + eps)``; it is harmless in float32.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        multi_channel: bool = True,
        eps: float = 1e-8,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        self.multi_channel = multi_channel
        self.eps = eps
        kh, kw = self.kernel_size
        self.slide_winsize = (in_channels if multi_channel else 1) * kh * kw

    def _valid_sum(self, part: Tensor, hole: Tensor | None, dtype: torch.dtype) -> Tensor:
        """Known mask entries of one channel part summed over its mask channels: (B,1,H,W) in ``dtype``."""
        channels = part.shape[1] if self.multi_channel else 1
        if hole is None:
            return torch.full((part.shape[0], 1, *part.shape[2:]), float(channels), dtype=dtype, device=part.device)
        valid = 1 - hole.to(dtype)
        return valid * channels if hole.shape[1] == 1 else valid.sum(1, keepdim=True)

    def _window_count(self, valid_sum: Tensor) -> Tensor:
        """Known mask entries under each window: (B,1,H,W) -> (B,1,H',W'), exact integers for binary masks."""
        kh, kw = self.kernel_size
        if self.dilation == (1, 1) and 2 * self.padding[0] <= kh and 2 * self.padding[1] <= kw:
            # a sum pool is an all-ones convolution, ~10x faster than the 1-channel conv2d on CPU
            return F.avg_pool2d(valid_sum, self.kernel_size, self.stride, self.padding, divisor_override=1)
        ones = torch.ones(1, 1, kh, kw, dtype=valid_sum.dtype, device=valid_sum.device)
        return F.conv2d(valid_sum, ones, None, self.stride, self.padding, self.dilation)

    def forward(
        self, x: Tensor | Sequence[Tensor], hole: Tensor | Sequence[Tensor | None] | None = None
    ) -> tuple[Tensor, Tensor]:
        parts = [x] if isinstance(x, Tensor) else list(x)
        holes = [hole] if hole is None or isinstance(hole, Tensor) else list(hole)
        self._check(parts, holes)
        ratio_dtype = torch.promote_types(parts[0].dtype, torch.float32)
        with torch.no_grad(), torch.autocast(device_type=parts[0].device.type, enabled=False):
            count = self._window_count(sum(self._valid_sum(p, h, ratio_dtype) for p, h in zip(parts, holes)))
            new_valid = count.clamp(0, 1)
            ratio = self.slide_winsize / (count + self.eps) * new_valid

        masked = [p if h is None else p * (1 - h).to(p.dtype) for p, h in zip(parts, holes)]
        raw = self._conv_forward(torch.cat(masked, 1) if len(masked) > 1 else masked[0], self.weight, None)
        if self.bias is None:
            out = raw * ratio
        else:  # NVIDIA: ((raw - b) * ratio + b) * new_valid, with raw computed without the bias
            out = (raw * (ratio * new_valid)).addcmul_(self.bias.view(1, -1, 1, 1).to(ratio.dtype), new_valid)
        out = out.to(raw.dtype)

        new_hole = 1 - new_valid
        if self.multi_channel:
            new_hole = new_hole.expand(-1, self.out_channels, -1, -1)
        return out, new_hole

    def _check(self, parts: list[Tensor], holes: list[Tensor | None]) -> None:
        if len(parts) != len(holes) or (len(parts) > 1 and not self.multi_channel):
            raise ValueError("channel parts need multi_channel=True and one hole mask (or None) per part")
        if sum(p.shape[1] for p in parts) != self.in_channels:
            raise ValueError(f"inputs have {sum(p.shape[1] for p in parts)} channels, expected {self.in_channels}")
        for part, hole in zip(parts, holes):
            allowed = (1, part.shape[1]) if self.multi_channel else (1,)
            if hole is None:
                continue
            if hole.ndim != 4 or hole.shape[1] not in allowed or hole.shape[2:] != part.shape[2:]:
                raise ValueError(
                    f"hole mask must be (B,{'|'.join(map(str, allowed))},H,W) matching x {tuple(part.shape)}, "
                    f"got {tuple(hole.shape)}"
                )


__all__ = ["PartialConv2d"]

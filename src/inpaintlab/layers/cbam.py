"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018), official layout.

Facts from ``Jongchan/attention-module/MODELS/cbam.py`` (implementation notes 3.6):

* Channel gate: one shared MLP ``Linear(C, C/r), ReLU, Linear(C/r, C)`` (biases on) applied to the global
  average pool and to the global max pool, the two outputs summed, sigmoid, multiplied into the input.
* Spatial gate: ``cat([max over C, mean over C])`` (max first), ``Conv7x7(2 -> 1, padding 3, no bias)``,
  ``BatchNorm2d(1, eps=1e-5, momentum=0.01)``, no ReLU, sigmoid, multiplied into the input.
* Order: channel gate, then spatial gate. ``reduction`` defaults to 16; the hidden width is at least 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelGate(nn.Module):
    """(B,C,H,W) -> (B,C,H,W): ``x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))`` per channel."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """(B,C,H,W) -> (B,C,H,W): ``x * sigmoid(BN(conv7x7([max_c x, mean_c x])))`` per position."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.norm(self.conv(pooled)))


class CBAM(nn.Module):
    """Channel gate then spatial gate: (B,C,H,W) -> (B,C,H,W)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial_gate(self.channel_gate(x))


__all__ = ["CBAM", "ChannelGate", "SpatialGate"]

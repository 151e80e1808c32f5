"""Shared building blocks: the pix2pix residual block and the pix2pix weight initialisation."""

from __future__ import annotations

from torch import Tensor, nn


class ResnetBlock(nn.Module):
    """pix2pix residual block: ``x + [pad, Conv3x3, BN, ReLU, pad, Conv3x3, BN](x)`` (no ReLU after the add).

    (B,C,H,W) -> (B,C,H,W). ``padding`` is 'reflect' (LGNet's Net_L), 'replicate' or 'zeros'. Convolutions
    have no bias because a BatchNorm follows each of them.
    """

    def __init__(self, channels: int, padding: str = "reflect"):
        super().__init__()
        if padding not in ("reflect", "replicate", "zeros"):
            raise ValueError(f"padding must be 'reflect', 'replicate' or 'zeros', got {padding!r}")

        def conv() -> nn.Conv2d:
            return nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, bias=False)

        self.body = nn.Sequential(conv(), nn.BatchNorm2d(channels), nn.ReLU(inplace=True), conv(), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def init_pix2pix_weights(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix ``init_weights('normal', std)`` over every submodule, in place.

    Conv/ConvTranspose/Linear weights ~ N(0, std) and biases 0; BatchNorm weights ~ N(1, std) and biases 0.
    Uses the global torch RNG, like torch's own layer initialisation. Call it before adding spectral norm
    (so the power-iteration vectors are computed for the final weight).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


__all__ = ["ResnetBlock", "init_pix2pix_weights"]

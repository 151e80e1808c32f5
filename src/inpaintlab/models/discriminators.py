"""Discriminators named after the design they follow (``create_discriminator(name)``).

Every discriminator takes ``D(image (B,3,H,W) in [0,1], mask (B,1,H,W) 1 = hole or None)``; only SRPNet's
local D reads the mask. Registered designs (``lgnet``, ``msanet``, ``srpnet``, ``cstfnet`` and ``cicm`` also
as ``<name>_tiny`` for CPU tests):

* ``lgnet``, ``pennet``, ``cstfnet``, ``cicm``: ``SNPatchDiscriminator`` (below), raw logits map.
* ``msanet``: ``MSANetDiscriminator``, MSA-Net Table 3 (EdgeConnect style, SN on all five convs, sigmoid).
* ``srpnet_global``, ``srpnet_local``, ``srpnet``: SRPNet Table A2 on the whole image, on the hole's
  bounding box, and both (a list of two logits maps).

``SNPatchDiscriminator``: LGNet's spectral-normalised patch discriminator (official ``SNDiscriminator``,
"Ref: PENNet"): ``n_layers`` x [SN(Conv k5 p1, no bias), LeakyReLU(0.2)] with stride 2 except the last (stride 1), channels
``ndf * min(2**i, 8)``, then a plain Conv k5 s1 p1 -> 1 channel (with bias). No sigmoid: the output is a
logits map, (B,1,27,27) for a 256x256 input with the defaults (4,318,401 parameters).

Its (B,3,H,W) input in [0,1] (DESIGN.md) is mapped to [-1,1] inside, the range the official D was
trained on. Spectral norm is ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per
training forward, eps 1e-12, like PEN-Net's copy); the pix2pix N(0, 0.02) initialisation is applied
before it is attached, so the un-normalised weights get that init, as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import InpaintlabError
from ..layers.blocks import init_pix2pix_weights
from ..types import InpaintDiscriminator
from ._registry import build, register_discriminator


class SNPatchDiscriminator(InpaintDiscriminator):
    """(B,in_channels,H,W) image in [0,1] -> (B,1,h,w) real/fake logits, one per patch."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 4, kernel_size: int = 5):
        super().__init__()
        if n_layers < 1 or ndf < 1:
            raise InpaintlabError(f"discriminator needs n_layers >= 1 and ndf >= 1, got {n_layers}, {ndf}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(n_layers):
            out = ndf * min(2**i, 8)
            stride = 1 if i == n_layers - 1 else 2
            layers += [nn.Conv2d(channels, out, kernel_size, stride, padding=1, bias=False), nn.LeakyReLU(0.2)]
            channels = out
        self.encoder = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, 1, kernel_size, stride=1, padding=1)
        init_pix2pix_weights(self)
        for layer in self.encoder:
            if isinstance(layer, nn.Conv2d):
                spectral_norm(layer)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` is ignored (the patch D sees the whole image)."""
        return self.classifier(self.encoder(image * 2 - 1))

    def features(self, image: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """The output of every LeakyReLU of the encoder, (B,C_i,h_i,w_i) shallow to deep."""
        return self._encode(image)

    def judge(self, image: Tensor, mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """``([forward(image)], features(image))`` from one pass through the encoder."""
        found = self._encode(image)
        return [self.classifier(found[-1])], found

    def _encode(self, image: Tensor) -> list[Tensor]:
        x, found = image * 2 - 1, []
        for layer in self.encoder:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                found.append(x)
        return found


@register_discriminator
def lgnet(**options) -> SNPatchDiscriminator:
    """LGNet's SN patch discriminator (official layout; 27x27 logits at 256x256, where the paper's text
    says 32x32: the official k5/p1 convolutions give 27x27)."""
    return build(SNPatchDiscriminator, options)


@register_discriminator
def lgnet_tiny(**options) -> SNPatchDiscriminator:
    """Same design with ``ndf=8`` for CPU tests (3x3 logits at 64x64)."""
    return build(SNPatchDiscriminator, options, ndf=8)


class MSANetDiscriminator(InpaintDiscriminator):
    """MSA-Net patch discriminator (Table 3; official ``Discriminator.py``, EdgeConnect style).

    (B,in_channels,H,W) image in [0,1] (fed as is: MSA-Net trains on [0,1]) -> (B,1,h,w) per-patch
    probabilities, (B,1,30,30) at 256x256. Five Conv k4 p1 without bias, strides 2,2,2,1,1, channels
    ndf, 2ndf, 4ndf, 8ndf, 1, spectral norm on **all five**, LeakyReLU(0.2) after the first four, sigmoid
    (BCE). ``use_sigmoid=False`` returns the logits instead (for a numerically safer BCE-with-logits; the
    same loss). N(0, 0.02) init of the un-normalised weights, as the official ``init_weights``.
    2,763,776 parameters with the defaults.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, use_sigmoid: bool = True):
        super().__init__()
        channels = [in_channels, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1]
        layers: list[nn.Module] = []
        for i, stride in enumerate((2, 2, 2, 1, 1)):
            layers.append(nn.Conv2d(channels[i], channels[i + 1], 4, stride, padding=1, bias=False))
            if i < 4:
                layers.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)
        self.use_sigmoid = use_sigmoid
        init_pix2pix_weights(self)
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                spectral_norm(layer)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` is ignored (the patch D sees the whole image)."""
        scores = self.body(image)
        return scores.sigmoid() if self.use_sigmoid else scores


@register_discriminator
def msanet(**options) -> MSANetDiscriminator:
    """MSA-Net's discriminator (Table 3): SN on all 5 convs, sigmoid; 30x30 map at 256x256."""
    return build(MSANetDiscriminator, options)


@register_discriminator
def msanet_tiny(**options) -> MSANetDiscriminator:
    """Same design with ``ndf=8`` for CPU tests (6x6 map at 64x64)."""
    return build(MSANetDiscriminator, options, ndf=8)


class SRPNetDiscriminator(InpaintDiscriminator):
    """SRPNet Table A2 (shared by its global and local discriminators): (B,3,H,W) image in [0,1] -> logits.

    Five Conv k5 s2 p1: in -> ndf, 2ndf, 4ndf, 8ndf -> 1, LeakyReLU(0.2) after the first four; logits
    (B,1,7,7) at 256x256, (B,1,3,3) at 128x128. 4,318,401 parameters with ``ndf=64``. Choices (the table is
    silent): spectral norm on the first four convs, which have no bias, and a plain last conv with bias, as in
    PEN-Net's discriminator (SRPNet's base; ``use_spectral_norm``); the table's LeakyReLU on the 1-channel
    output is read as a layout artefact and off by default (``last_lrelu``). The image is mapped to [-1,1]
    (PEN-Net's range); pix2pix N(0, 0.02) init before spectral norm is attached.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, use_spectral_norm: bool = True, last_lrelu: bool = False):
        super().__init__()
        channels = [in_channels, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
        layers: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(cin, cout, 5, 2, padding=1, bias=not use_spectral_norm), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Conv2d(8 * ndf, 1, 5, 2, padding=1))
        if last_lrelu:
            self.classifier.append(nn.LeakyReLU(0.2))
        init_pix2pix_weights(self)
        if use_spectral_norm:
            for layer in self.encoder:
                if isinstance(layer, nn.Conv2d):
                    spectral_norm(layer)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` is ignored (global view)."""
        return self.classifier(self.encoder(image * 2 - 1))


def hole_boxes(mask: Tensor) -> list[tuple[int, int, int, int]]:
    """(B,1,H,W) mask, 1 = hole -> per sample ``(top, bottom, left, right)`` (end-exclusive) around mask > 0.5.

    A sample without any hole gets the whole image.
    """
    boxes = []
    for sample in mask[:, 0] > 0.5:
        rows, cols = sample.any(dim=1).nonzero(), sample.any(dim=0).nonzero()
        if len(rows) == 0:
            boxes.append((0, sample.shape[0], 0, sample.shape[1]))
        else:
            boxes.append((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    return boxes


def crop_holes(image: Tensor, mask: Tensor, size: int) -> Tensor:
    """(B,C,H,W) image, (B,1,H,W) mask -> (B,C,size,size): each hole's bounding box, bilinearly resized.

    Differentiable in ``image`` (crop + ``F.interpolate``, align_corners=False); boxes of any aspect are
    stretched to the square, for central squares and irregular holes alike.
    """
    crops = [
        F.interpolate(image[i : i + 1, :, top:bottom, left:right], (size, size), mode="bilinear", align_corners=False)
        for i, (top, bottom, left, right) in enumerate(hole_boxes(mask))
    ]
    return torch.cat(crops, dim=0)


class LocalRegionDiscriminator(InpaintDiscriminator):
    """SRPNet's local D (Sec. 3.4): ``forward(image (B,3,H,W), mask (B,1,H,W))`` -> logits of the inpainted region.

    The hole's bounding box is cropped and resized to ``local_size`` (128 = GLCIC's local input, ref. [10];
    the paper gives no size), then judged by a Table A2 network.
    """

    def __init__(self, ndf: int = 64, local_size: int = 128, use_spectral_norm: bool = True, last_lrelu: bool = False):
        super().__init__()
        self.local_size = local_size
        self.net = SRPNetDiscriminator(3, ndf, use_spectral_norm, last_lrelu)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            raise InpaintlabError("the SRPNet local discriminator needs the hole mask: call D(image, mask)")
        return self.net(crop_holes(image, mask, self.local_size))


class GlobalLocalDiscriminator(InpaintDiscriminator):
    """SRPNet's multi-scale discriminators: ``forward(image (B,3,H,W), mask (B,1,H,W))`` -> ``[global_logits
    (B,1,h,w), local_logits (B,1,h',w')]``."""

    def __init__(self, ndf: int = 64, local_size: int = 128, use_spectral_norm: bool = True, last_lrelu: bool = False):
        super().__init__()
        self.global_d = SRPNetDiscriminator(3, ndf, use_spectral_norm, last_lrelu)
        self.local_d = LocalRegionDiscriminator(ndf, local_size, use_spectral_norm, last_lrelu)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        return [self.global_d(image), self.local_d(image, mask)]


@register_discriminator
def srpnet_global(**options) -> SRPNetDiscriminator:
    """SRPNet global D (Table A2) on the whole image; 7x7 logits at 256x256."""
    return build(SRPNetDiscriminator, options, fixed={"in_channels": 3})


@register_discriminator
def srpnet_local(**options) -> LocalRegionDiscriminator:
    """SRPNet local D (Table A2) on the hole's bounding box resized to ``local_size``; 3x3 logits at 128."""
    return build(LocalRegionDiscriminator, options)


@register_discriminator
def srpnet(**options) -> GlobalLocalDiscriminator:
    """SRPNet global + local D: ``[global_logits, local_logits]`` (Table 5 "+Discriminator" rows)."""
    return build(GlobalLocalDiscriminator, options)


@register_discriminator
def srpnet_tiny(**options) -> GlobalLocalDiscriminator:
    """``srpnet`` with ``ndf=8`` and 64x64 local crops for CPU tests (1x1 logits at 64x64)."""
    return build(GlobalLocalDiscriminator, options, ndf=8, local_size=64)


@register_discriminator
def pennet(**options) -> SNPatchDiscriminator:
    """PEN-Net's SN-PatchGAN (notes 3.2: the layout LGNet copied); Table 5 "Baseline" row."""
    return build(SNPatchDiscriminator, options)


@register_discriminator
def cstfnet(**options) -> SNPatchDiscriminator:
    """CSTFNet's D: the paper takes its LSGAN recipe (Eqs. 5-6) from LGNet [36], so LGNet's SN patch D (raw logits)."""
    return build(SNPatchDiscriminator, options)


@register_discriminator
def cstfnet_tiny(**options) -> SNPatchDiscriminator:
    """``cstfnet`` D with ``ndf=8`` for CPU tests (3x3 logits at 64x64)."""
    return build(SNPatchDiscriminator, options, ndf=8)


@register_discriminator
def cicm(**options) -> SNPatchDiscriminator:
    """CICM's C in the relativistic loss (Eqs. 5-6): the paper names no design, so the SN patch D of PEN-Net /
    LGNet (raw logits, as ``sigmoid(C(x) - E[C(y)])`` needs); 27x27 logits at 256x256."""
    return build(SNPatchDiscriminator, options)


@register_discriminator
def cicm_tiny(**options) -> SNPatchDiscriminator:
    """``cicm`` D with ``ndf=8`` for CPU tests (3x3 logits at 64x64)."""
    return build(SNPatchDiscriminator, options, ndf=8)

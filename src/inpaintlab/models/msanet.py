"""MSA-Net: "Multistage attention network for image inpainting" (Wang et al., Pattern Recognition 2020).

A partial-convolution U-Net (Tables 1-2) with pixelwise contextual attention + SE after Decode_4 and
Decode_3 (32x32 and 64x64 at 256x256 input), built to match the official code ``wangning-001/MANet``
(``net.py::PConvUNet``) layer for layer: 33,686,356 parameters for ``msanet``.

Choices where the paper is silent, all taken from the official code (the numerical ones are keyword
arguments of the factories; the layer layout is fixed by the parameter count):
* every PConv is multi-channel with a bias, also before BatchNorm; Encode_1 and Decode_1 have no BN;
  encoder ReLU, decoder LeakyReLU(0.2); Decode_1 is linear (images in [0,1], no tanh).
* features **and** masks are upsampled by nearest neighbour (``upsampling``) and concatenated separately.
* attention: see ``layers/pixel_attention.py`` (no query normalisation, no temperature, 3x3 propagation).
* the attention gets the input hole mask, resized by nearest neighbour to its feature size.
* PyTorch default initialisation (the official ``weights_init`` is never called).
Project choices: the first step zeroes the hole (DESIGN.md); the linear output is clamped to [0,1] for
``pred`` with a straight-through gradient (``straight_through_clamp=True``), so losses see the clamped
image but receive the gradient of the linear output, as in official training; ``False`` = hard clamp.
``freeze_encoder_bn=True`` keeps the encoder BatchNorms in eval mode during training (PConv fine-tuning;
the official code freezes every BN, the PConv paper only the encoder's).

``pconv_unet`` is the same U-Net without attention (Liu et al. 2018 baseline, 32,865,236 parameters).
``attention_flow`` colour-codes where each hole pixel borrows from (Figs. 8-9).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.partial_conv import PartialConv2d
from ..layers.pixel_attention import PixelAttentionBlock
from ..types import InpaintModel, InpaintOutput, check_image_mask, check_size_multiple, masked_input
from ._registry import build, register_model

UPSAMPLING_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")  # F.interpolate's 4-D modes


class PConvBlock(nn.Module):
    """PartialConv2d -> optional BatchNorm -> activation ('relu', 'leaky' or None).

    forward(x (B,C_in,H,W) or channel parts, hole (B,1,H,W) 1 = hole, or one per part)
    -> (y (B,C_out,H',W'), hole (B,1,H',W')).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bn: bool, activation: str | None):
        super().__init__()
        self.conv = PartialConv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=True, multi_channel=True)
        self.bn = nn.BatchNorm2d(out_ch) if bn else nn.Identity()
        self.act = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), None: nn.Identity()}[activation]

    def forward(self, x: Tensor | list[Tensor], hole: Tensor | list[Tensor]) -> tuple[Tensor, Tensor]:
        y, new_hole = self.conv(x, hole)
        return self.act(self.bn(y)), new_hole[:, :1]


def _encoder_kernel(level: int) -> int:
    """Kernel of Encode_level (Table 2): 7, 5, 5, then 3."""
    return 7 if level == 1 else 5 if level in (2, 3) else 3


class PConvUNet(InpaintModel):
    """Partial-convolution U-Net with optional pixelwise attention after chosen decoder stages.

    forward(image (B,3,H,W) in [0,1], mask (B,1,H,W) 1 = hole) -> InpaintOutput(pred (B,3,H,W) in [0,1]).
    ``layers`` encoder stages of stride 2 (H, W must be multiples of 2**layers); channels
    ``base, 2base, 4base, 8base, 8base, ...``; ``attention_levels`` are decoder indices (Decode_4 -> 4).
    """

    def __init__(
        self,
        layers: int = 8,
        base_channels: int = 64,
        attention_levels: tuple[int, ...] = (4, 3),
        upsampling: str = "nearest",
        straight_through_clamp: bool = True,
        freeze_encoder_bn: bool = False,
        **attention_kwargs,
    ):
        super().__init__()
        if layers < 4:
            raise InpaintlabError(f"layers must be >= 4 (Encode_1..Encode_4 are fixed by Table 2), got {layers}")
        if any(not 1 <= lv <= layers for lv in attention_levels):
            raise InpaintlabError(f"attention_levels must lie in 1..{layers}, got {attention_levels}")
        if upsampling not in UPSAMPLING_MODES:
            raise InpaintlabError(f"upsampling must be one of {', '.join(UPSAMPLING_MODES)}, got {upsampling!r}")
        self.layers = layers
        self.size_multiple = 2**layers
        self.upsampling = upsampling
        self.straight_through_clamp = straight_through_clamp
        self.freeze_encoder_bn = freeze_encoder_bn
        b = base_channels
        channels = [3, b, 2 * b, 4 * b] + [8 * b] * (layers - 3)  # channels[i] = output of Encode_i
        self.encoders = nn.ModuleList(
            PConvBlock(channels[i - 1], channels[i], _encoder_kernel(i), 2, bn=i > 1, activation="relu")
            for i in range(1, layers + 1)
        )
        # decoders[i - 1] is Decode_i: cat(up(h), Encode_{i-1}) -> channels[i - 1].
        self.decoders = nn.ModuleList(
            PConvBlock(channels[i] + channels[i - 1], channels[i - 1], 3, 1, bn=i > 1, activation="leaky" if i > 1 else None)
            for i in range(1, layers + 1)
        )
        self.attention = nn.ModuleDict(
            {f"decode_{lv}": PixelAttentionBlock(channels[lv - 1], **attention_kwargs) for lv in attention_levels}
        )

    def train(self, mode: bool = True) -> "PConvUNet":
        """Like ``nn.Module.train``; with ``freeze_encoder_bn`` the encoder BatchNorms stay in eval mode."""
        super().train(mode)
        if mode and self.freeze_encoder_bn:
            for block in self.encoders:
                block.bn.eval()
        return self

    def _upsample(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.upsampling)

    def forward(self, image: Tensor, mask: Tensor) -> InpaintOutput:
        check_image_mask(image, mask)
        check_size_multiple(image, self.size_multiple, f"{type(self).__name__} with {self.layers} layers")
        h = masked_input(image, mask)
        hole = mask.to(h.dtype)
        skips = [(h, hole)]  # (features, 1-channel hole mask) of Encode_0 (the input) .. Encode_L
        for encoder in self.encoders:
            h, hole = encoder(h, hole)
            skips.append((h, hole))
        for i in range(self.layers, 0, -1):
            skip, skip_hole = skips[i - 1]
            h, hole = self._upsample(h), F.interpolate(hole, scale_factor=2, mode="nearest")
            # features and masks concatenated separately: cat([h, skip]) with cat([hole, skip_hole])
            h, hole = self.decoders[i - 1]([h, skip], [hole, skip_hole])
            if f"decode_{i}" in self.attention:
                h = self.attention[f"decode_{i}"](h, mask)
        if self.straight_through_clamp:
            return InpaintOutput(pred=h + (h.clamp(0, 1) - h).detach())
        return InpaintOutput(pred=h.clamp(0, 1))


# ------------------------------------------------------------------------------------------- factories


ATTENTION_OPTIONS = ("propagate_size", "softmax_scale", "normalize_queries", "squeeze_ratio")  # PixelAttentionBlock's


@register_model
def msanet(**options) -> PConvUNet:
    """MSA-Net generator, official configuration (33,686,356 parameters; H, W multiples of 256)."""
    return build(PConvUNet, options, extra=ATTENTION_OPTIONS)


@register_model
def msanet_tiny(**options) -> PConvUNet:
    """MSA-Net for CPU tests: 6 stages, base width 8 (H, W multiples of 64); attention at 8x8 and 16x16 for 64x64."""
    return build(PConvUNet, options, extra=ATTENTION_OPTIONS, layers=6, base_channels=8)


@register_model
def pconv_unet(**options) -> PConvUNet:
    """Liu et al. (2018) partial-convolution U-Net: MSA-Net without attention (32,865,236 parameters)."""
    return build(PConvUNet, options, fixed={"attention_levels": ()})


@register_model
def pconv_unet_tiny(**options) -> PConvUNet:
    """``pconv_unet`` for CPU tests: 6 stages, base width 8."""
    return build(PConvUNet, options, fixed={"attention_levels": ()}, layers=6, base_channels=8)


# ------------------------------------------------------------------------------- attention visualisation


def _middlebury_wheel() -> np.ndarray:
    """The optical-flow colour wheel of Baker et al. (Middlebury): (55, 3) float in [0, 255]."""
    segments = [
        (15, (255, 0, 0), (255, 255, 0)),
        (6, (255, 255, 0), (0, 255, 0)),
        (4, (0, 255, 0), (0, 255, 255)),
        (11, (0, 255, 255), (0, 0, 255)),
        (13, (0, 0, 255), (255, 0, 255)),
        (6, (255, 0, 255), (255, 0, 0)),
    ]
    rows = []
    for n, start, end in segments:
        start, end = np.array(start, dtype=float), np.array(end, dtype=float)
        ramp = np.floor(np.abs(end - start) * np.arange(n)[:, None] / n)  # 0, floor(255/n), ...
        rows.append(start + np.sign(end - start) * ramp)
    return np.concatenate(rows)


def flow_to_color(offsets: Tensor) -> np.ndarray:
    """Colour-code offsets (H,W,2) as (dy, dx) with |offset| <= 1 at full saturation -> (H,W,3) uint8.

    Middlebury colour wheel with ``(u, v) = (dy, -dx)``: a zero offset is white, an offset towards the
    bottom-right is pink/magenta and towards the top-left green, as MSA-Net's Fig. 8 describes (DeepFill's
    ``(dy, dx)`` mapping would put pink at the bottom-left). Magnitudes above 1 are clipped.
    """
    wheel = _middlebury_wheel() / 255
    u, v = offsets[..., 0].double().numpy(), -offsets[..., 1].double().numpy()
    radius = np.minimum(np.hypot(u, v), 1.0)
    position = (np.arctan2(-v, -u) / math.pi + 1) / 2 * (len(wheel) - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % len(wheel)
    frac = (position - k0)[..., None]
    color = (1 - frac) * wheel[k0] + frac * wheel[k1]
    color = 1 - radius[..., None] * (1 - color)
    return np.round(color * 255).astype(np.uint8)


def color_key(size: int) -> np.ndarray:
    """The colour key of ``flow_to_color`` as a (size, size, 3) uint8 image (centre = zero offset)."""
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    dy, dx = torch.meshgrid(coords, coords, indexing="ij")
    return flow_to_color(torch.stack([dy, dx], dim=-1))


@contextmanager
def _eval_mode(model: nn.Module):
    """Run ``model`` in eval mode (BatchNorm running statistics untouched), then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def attention_offsets(model: nn.Module, image: Tensor, mask: Tensor, reduce: str = "argmax") -> dict[str, tuple[Tensor, Tensor]]:
    """Where each hole pixel of each pixelwise-attention map borrows from.

    image (1,3,H,W) in [0,1], mask (1,1,H,W) 1 = hole; the model runs once in eval mode. Returns
    ``{"32x32": (offsets (h,w,2), hole (h,w))}`` per attention block: offsets (dy, dx) in pixels of that
    map from the query to the key it attends to (``reduce="argmax"``: the most attended key;
    ``"expectation"``: the attention-weighted mean position), zero outside the hole; hole is the bool
    hole mask at that size.
    """
    if reduce not in ("argmax", "expectation"):
        raise InpaintlabError(f"reduce must be 'argmax' or 'expectation', got {reduce!r}")
    check_image_mask(image, mask)
    if image.shape[0] != 1:
        raise InpaintlabError(f"attention maps are drawn for one image at a time, got a batch of {image.shape[0]}")
    blocks = [m for m in model.modules() if isinstance(m, PixelAttentionBlock)]
    if not blocks:
        raise InpaintlabError(f"{type(model).__name__} has no pixelwise attention to visualise (use an msanet model)")
    inputs: list[tuple[Tensor, Tensor]] = []
    hooks = [b.register_forward_hook(lambda mod, args, out: inputs.append(args)) for b in blocks]
    try:
        with _eval_mode(model), torch.inference_mode():
            model(image, mask)
    finally:
        for hook in hooks:
            hook.remove()
    result = {}
    for block, (features, hole) in zip(blocks, inputs):
        with torch.inference_mode():
            probs = block.attention.probabilities(features, hole)[0].double()  # (HW query, HW key)
        h, w = features.shape[2:]
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grid = torch.stack([ys, xs], dim=-1).reshape(h * w, 2).double()
        target = grid[probs.argmax(-1)] if reduce == "argmax" else probs @ grid
        small_hole = F.interpolate(hole.float(), size=(h, w), mode="nearest")[0, 0] > 0.5
        offsets = (target - grid).reshape(h, w, 2) * small_hole[..., None]
        result[f"{h}x{w}"] = (offsets, small_hole)
    return result


def attention_flow(model: nn.Module, image: Tensor, mask: Tensor, reduce: str = "argmax") -> dict[str, np.ndarray]:
    """Figs. 8-9: per attention map, hole pixels coloured by the offset they borrow from -> (h,w,3) uint8.

    Offsets are scaled by the map size (an offset of the full height/width saturates), so maps at
    different resolutions share one colour scale; known pixels are white (zero offset). See
    ``attention_offsets`` for the arguments and ``flow_to_color`` / ``color_key`` for the colours.
    """
    colored = {}
    for level, (offsets, _) in attention_offsets(model, image, mask, reduce).items():
        h, w = offsets.shape[:2]
        colored[level] = flow_to_color(offsets / torch.tensor([h, w], dtype=offsets.dtype))
    return colored


def attention_panel(model: nn.Module, image: Tensor, mask: Tensor, reduce: str = "argmax") -> np.ndarray:
    """Fig. 9 row: [input with white hole | composite | attention maps (nearest-upsampled) | colour key].

    image (1,3,H,W) in [0,1], mask (1,1,H,W) 1 = hole -> (H, W * (3 + maps), 3) uint8.
    """
    from ..types import composite

    flows = attention_flow(model, image, mask, reduce)
    with _eval_mode(model), torch.inference_mode():
        filled = composite(model(image, mask).pred, image, mask)
    height, width = image.shape[2:]
    tiles = [image * (1 - mask) + mask, filled]
    tiles = [(t[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy() for t in tiles]
    for colors in flows.values():
        big = F.interpolate(torch.from_numpy(colors).permute(2, 0, 1)[None].float(), size=(height, width))
        tiles.append(big[0].permute(1, 2, 0).to(torch.uint8).numpy())
    key = color_key(min(height, width))
    tiles.append(np.pad(key, ((0, height - key.shape[0]), (0, width - key.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(tiles, axis=1)

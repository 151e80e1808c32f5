"""LGNet: Image Inpainting with Local and Global Refinement (Quan et al., TIP 2022), official layout.

Three stages, each a generator on ``cat([composite, mask])`` in [-1,1] space (official
``pix2pixglg_model.py``): holes are first filled with +1 (white); every stage's raw output is composited with
the known pixels and concatenated with the mask as the next stage's input.

* ``Net_C`` (coarse): pix2pix ``unet_256`` -- 8 stride-2 downsamplings (Conv k4 s2 p1), BatchNorm, LeakyReLU(0.2)
  down / ReLU up, skip = ``cat([encoder, decoder])``, Tanh output. 54,414,979 parameters.
* ``Net_L`` (local): pix2pix ``ResnetGenerator`` with 2 downsamplings and 4 reflect-padded residual blocks
  (the paper quotes a 109x109 receptive field; this official layout reaches 85-89 pixels, see
  ``test_local_net_is_local``). 5,483,203 parameters.
* ``Net_G`` (global): the same U-Net plus ``AttentionModule`` on the decoder outputs at 16x16, 32x32 and 64x64
  (for 256x256 inputs; ``attention_levels=(4, 3, 2)`` = 1/2**level of the input size). 55,104,003 parameters.

Every conv followed by BatchNorm has no bias; init is pix2pix ``normal(0, 0.02)`` (global torch RNG).

Choices where the paper and the official code leave room (each a keyword argument):
* ``stages`` selects a Table VI variant (FID ablation). "C" = Net_C alone; "C+L" = Net_C -> Net_L;
  "C+G_att" = Net_C -> Net_G; "C+G+G_att" = Net_C -> U-Net without attention -> Net_G (two large-receptive-
  field refiners, the paper's "brute-force concatenation"); "C+L+G" = Net_C -> Net_L -> U-Net without
  attention; "C+L+G_att" = full LGNet (default). ``stages`` of the output holds every stage but the last.
* ``share_weights`` (LGNet_share, Table IV/V): Net_C *is* Net_G's U-Net run without its attention modules
  (notes 1.11: G3 + G2 = 60,587,206 parameters). BatchNorm running statistics are shared too, since the layers are.
* ``ngf_unet`` / ``ngf_local``: LGNet_light is U-Nets at 48 with the local net at 64 (67,095,337 parameters,
  the paper's count). The official ``Unet256`` hard-codes the attention widths (512/256/128) and cannot be
  built at 48; here they follow the decoder width (``ngf*8, ngf*4, ngf*2``), which gives the paper's count.
* The pix2pix U-Net applies LeakyReLU in place, so its skip tensors hold ``LeakyReLU(x)``; the decoder only
  sees them through ``ReLU`` and ``ReLU(LeakyReLU(x)) == ReLU(x)``, so out-of-place activations here are exact.
* The attention is the official code's (``layers/attention.py``), not the paper's Eq. 10: unnormalised
  queries, 3x3 score propagation, output = weighted sum of the unit keys (Eq. 10: cosine scores, no
  propagation, weighted sum of the features). Fig. 3's 16/32/64 placement and the 1x1 combiner agree.
* Masks are taken as binary (DESIGN.md); the official loader bicubic-resizes mask files and never
  binarises them. The hole is zeroed first, so anything inside it is ignored.
* ``use_fast_attention`` swaps the attention's HW x HW score map for ``scaled_dot_product_attention`` on
  box-filtered queries: the same function (``layers/attention.py``), less memory and time.
* ``upsample="resize_conv"`` (not in the paper or the official code, which use stride-2 transposed
  convolutions): nearest x2 then a 3x3 convolution in every decoder (``layers/upsample.py``), so no layer can
  draw the 2-pixel checkerboard that adversarial and feature-matching gradients excite in the transposed
  ones (measured in docs/results.md). ``adopt_weights`` starts it from trained transposed weights.
* ``hole_noise`` (not in the paper or the official code, 0 = off): the standard deviation of Gaussian noise
  (B,3,H,W) added to every stage's input inside the hole. A deterministic generator has nothing but its own
  layout to draw texture from in a hole of constant input, so texture terms pull the lattice of its strides
  (measured in docs/results.md); noise gives it random phase instead (StyleGAN-style inputs). Training draws
  it from the global RNG; eval mode from a fixed seed (``HOLE_NOISE_SEED``), so a fill is reproducible.
* ``channels_last`` stores the 4-D weights in channels-last layout (same numbers; oneDNN convolutions run
  ~25% faster on CPU in our measurement). Checkpoints are layout-free (tensors are saved contiguous).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.attention import AttentionModule
from ..layers.blocks import ResnetBlock, init_pix2pix_weights
from ..layers.upsample import UPSAMPLING, resize_conv_weight, upsample2x
from ..types import InpaintModel, InpaintOutput, check_image_mask, check_size_multiple, masked_input
from ._registry import build, register_model

ABLATIONS: dict[str, tuple[str, ...]] = {
    "C": ("C",),
    "C+L": ("C", "L"),
    "C+G_att": ("C", "G_att"),
    "C+G+G_att": ("C", "G", "G_att"),
    "C+L+G": ("C", "L", "G"),
    "C+L+G_att": ("C", "L", "G_att"),
}


HOLE_NOISE_SEED = 0  # the eval-mode noise of ``hole_noise``: the same input gives the same fill


def unet_width(ngf: int, depth: int) -> int:
    """Channels of the pix2pix U-Net features at ``depth`` stride-2 steps below the input (depth >= 1)."""
    return ngf * min(2 ** (depth - 1), 8)


class UNetGenerator(nn.Module):
    """pix2pix U-Net (``unet_256`` for ``num_downs=8``), optionally with attention on decoder outputs.

    (B,in_channels,H,W) -> (B,out_channels,H,W) in [-1,1] (Tanh); H, W multiples of ``2**num_downs``.
    ``attention_levels``: decoder outputs at 1/2**level of the input get an ``AttentionModule``
    (levels 1..num_downs-1); ``forward(x, use_attention=False)`` skips them (used by weight sharing).
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        ngf: int = 64,
        num_downs: int = 8,
        attention_levels: Sequence[int] = (),
        fast_attention: bool = True,
        upsample: str = "transposed",
    ):
        super().__init__()
        if num_downs < 2:
            raise InpaintlabError(f"num_downs must be >= 2, got {num_downs}")
        bad = [lvl for lvl in attention_levels if not 1 <= lvl < num_downs]
        if bad:
            raise InpaintlabError(f"attention levels must lie in 1..{num_downs - 1} for num_downs={num_downs}, got {bad}")
        width = [in_channels] + [unet_width(ngf, d) for d in range(1, num_downs + 1)]  # width[d] at depth d
        n = num_downs

        self.encoder = nn.ModuleList([nn.Conv2d(in_channels, width[1], 4, 2, 1, bias=False)])
        for d in range(1, n):
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(width[d], width[d + 1], 4, 2, 1, bias=False)]
            if d < n - 1:  # the innermost (bottleneck) conv has no norm
                layers.append(nn.BatchNorm2d(width[d + 1]))
            self.encoder.append(nn.Sequential(*layers))

        self.decoder = nn.ModuleList()
        for d in range(n, 1, -1):  # from depth d up to depth d-1; skip concatenation doubles the input
            in_ch = width[d] if d == n else 2 * width[d]
            up = upsample2x(upsample, in_ch, width[d - 1], 4, 1, bias=False)
            self.decoder.append(nn.Sequential(nn.ReLU(inplace=True), up, nn.BatchNorm2d(width[d - 1])))
        outermost = upsample2x(upsample, 2 * width[1], out_channels, 4, 1)  # biased: no norm follows
        self.decoder.append(nn.Sequential(nn.ReLU(inplace=True), outermost, nn.Tanh()))

        levels = sorted(set(attention_levels), reverse=True)
        self.attention = nn.ModuleDict({str(lvl): AttentionModule(width[lvl], fast_attention) for lvl in levels})
        self.num_downs = num_downs

    def forward(self, x: Tensor, use_attention: bool = True) -> Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()  # innermost features, used only here: the decoder's in-place ReLU may overwrite them
        for depth, block in zip(range(self.num_downs - 1, 0, -1), self.decoder[:-1]):
            x = block(x)  # now at 1/2**depth of the input
            if use_attention and str(depth) in self.attention:
                x = self.attention[str(depth)](x)
            x = torch.cat([skips.pop(), x], dim=1)
        return self.decoder[-1](x)


class LocalRefineNet(nn.Module):
    """pix2pix ``ResnetGenerator``: Net_L. (B,in_channels,H,W) -> (B,out_channels,H,W) in [-1,1].

    Reflect-padded Conv7x7, ``downsamplings`` x [Conv3x3 s2, BN, ReLU], ``n_blocks`` residual blocks,
    the mirror [ConvT3x3 s2 (output_padding 1), BN, ReLU], reflect-padded Conv7x7 (bias), Tanh.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 4,
        downsamplings: int = 2,
        upsample: str = "transposed",
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode="reflect", bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        for i in range(downsamplings):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(inplace=True)]
        layers += [ResnetBlock(ngf * 2**downsamplings, padding="reflect") for _ in range(n_blocks)]
        for i in range(downsamplings, 0, -1):
            c = ngf * 2**i
            layers += [
                upsample2x(upsample, c, c // 2, 3, 1, output_padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Conv2d(ngf, out_channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LGNet(InpaintModel):
    """Coarse -> local -> global inpainting. ``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1=hole)``.

    Returns ``InpaintOutput(pred, stages)``: ``pred`` is the last stage's raw output and ``stages`` the
    earlier ones (``(coarse, local)`` for the full model), all (B,3,H,W) in [0,1], not composited.
    H and W must be multiples of ``size_multiple = 2**num_downs``.
    """

    def __init__(
        self,
        ngf_unet: int = 64,
        ngf_local: int = 64,
        num_downs: int = 8,
        attention_levels: Sequence[int] = (4, 3, 2),
        stages: str = "C+L+G_att",
        share_weights: bool = False,
        use_fast_attention: bool = True,
        channels_last: bool = True,
        upsample: str = "transposed",
        hole_noise: float = 0.0,
    ):
        super().__init__()
        if not hole_noise >= 0:
            raise InpaintlabError(f"LGNet hole_noise must be >= 0 (a standard deviation), got {hole_noise!r}")
        if upsample not in UPSAMPLING:
            raise InpaintlabError(f"unknown LGNet upsample {upsample!r}; expected one of {', '.join(UPSAMPLING)}")
        if stages not in ABLATIONS:
            raise InpaintlabError(f"unknown LGNet stages {stages!r}; expected one of {', '.join(ABLATIONS)}")
        parts = ABLATIONS[stages]
        if share_weights and "G_att" not in parts:
            raise InpaintlabError(f"share_weights needs a G_att stage to share Net_C with; {stages!r} has none")
        attention_levels = tuple(attention_levels)

        def unet(levels: Sequence[int]) -> UNetGenerator:
            return UNetGenerator(4, 3, ngf_unet, num_downs, levels, fast_attention=use_fast_attention, upsample=upsample)

        builders = {
            "C": lambda: unet(()),
            "L": lambda: LocalRefineNet(4, 3, ngf_local, upsample=upsample),
            "G": lambda: unet(()),
            "G_att": lambda: unet(attention_levels),
        }
        owned = [p for p in parts if not (share_weights and p == "C")]
        self.nets = nn.ModuleDict({p: builders[p]() for p in owned})
        # (network name, run its attention?) per stage; with sharing, stage C runs G_att without attention.
        self.plan = tuple(("G_att", False) if p not in self.nets else (p, True) for p in parts)
        self.size_multiple = 2**num_downs
        self.upsample = upsample
        self.hole_noise = float(hole_noise)
        init_pix2pix_weights(self)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per sub-network, named like the official ``netG1/G2/G3`` by the first stage running it.

        The trainer gives each its own optimiser, as the official code does. With ``share_weights`` the
        shared U-Net is G1 (it runs first, as the coarse stage) and the local net G2.
        """
        first_position: dict[str, int] = {}
        for position, (name, _) in enumerate(self.plan, start=1):
            first_position.setdefault(name, position)
        return {f"G{pos}": list(self.nets[name].parameters()) for name, pos in first_position.items()}

    def adopt_weights(self, source: InpaintModel) -> None:
        """Take the weights of a trained LGNet built with the same options but ``hole_noise`` (which holds no tensor)
        and ``upsample``, which may go from transposed to ``resize_conv``: every tensor is copied and each transposed
        convolution is then projected onto its resize-conv (``resize_conv_weight``, least squares: the function
        loses only the layers' checkerboard part)."""
        free = ("upsample", "hole_noise")
        options = {k: v for k, v in self.model_kwargs.items() if k not in free}
        theirs = {k: v for k, v in source.model_kwargs.items() if k not in free}
        switch = (getattr(source, "upsample", None), self.upsample)
        if (
            not isinstance(source, LGNet)
            or options != theirs
            or switch not in (("transposed", "resize_conv"), (self.upsample,) * 2)
        ):
            raise InpaintlabError(
                f"{self.model_name} {self.model_kwargs} can start only from LGNet weights with the same options (but "
                f"hole_noise, and transposed upsampling for resize_conv); got {source.model_name} {source.model_kwargs}"
            )
        state = source.state_dict()
        if switch == ("transposed", "resize_conv"):
            for name, layer in source.named_modules():
                if isinstance(layer, nn.ConvTranspose2d):
                    state[f"{name}.weight"] = resize_conv_weight(layer)
        self.load_state_dict(state)

    def _noise(self, mask: Tensor) -> Tensor | None:
        """(B,1,H,W) hole -> (B,3,H,W) ``hole_noise``-scaled Gaussian noise in the hole, or None when it is off."""
        if self.hole_noise == 0:
            return None
        b, _, h, w = mask.shape
        seeded = None if self.training else torch.Generator(device=mask.device).manual_seed(HOLE_NOISE_SEED)
        noise = torch.randn((b, 3, h, w), generator=seeded, device=mask.device, dtype=mask.dtype)
        return self.hole_noise * noise * mask

    def forward(self, image: Tensor, mask: Tensor) -> InpaintOutput:
        check_image_mask(image, mask)
        check_size_multiple(image, self.size_multiple, self.model_name)
        image = masked_input(image, mask)
        known = image * 2 - 1  # [-1,1]; the hole is -1 here and multiplied away below
        x = known * (1 - mask) + mask  # official input: holes filled with +1
        noise = self._noise(mask)
        outputs = []
        for name, use_attention in self.plan:
            net = self.nets[name]
            inp = torch.cat([x if noise is None else x + noise, mask], dim=1)
            out = net(inp, use_attention) if isinstance(net, UNetGenerator) else net(inp)
            outputs.append(out)
            x = known * (1 - mask) + out * mask
        to_unit = [(o + 1) / 2 for o in outputs]
        return InpaintOutput(pred=to_unit[-1], stages=tuple(to_unit[:-1]))


@register_model
def lgnet(**options) -> LGNet:
    """LGNet as published (115,002,185 parameters); options (``LGNet``'s arguments) select Table VI ablations and sizes."""
    return build(LGNet, options)


@register_model
def lgnet_light(**options) -> LGNet:
    """LGNet_light: U-Nets at base width 48, local net at 64 (67,095,337 parameters)."""
    return build(LGNet, options, ngf_unet=48, fixed={"share_weights": False})


@register_model
def lgnet_share(**options) -> LGNet:
    """LGNet_share: Net_C shares Net_G's U-Net weights (60,587,206 parameters)."""
    return build(LGNet, options, fixed={"share_weights": True})


@register_model
def lgnet_tiny(**options) -> LGNet:
    """Small LGNet for CPU tests: 64x64 inputs, attention at 4x4, 8x8 and 16x16."""
    return build(LGNet, options, ngf_unet=8, ngf_local=8, num_downs=6)


@register_model
def lgnet_compact(**options) -> LGNet:
    """LGNet at base width 16 with 7 downsamplings (multiples of 128 px): the CPU-trained default model."""
    return build(LGNet, options, ngf_unet=16, ngf_local=16, num_downs=7)

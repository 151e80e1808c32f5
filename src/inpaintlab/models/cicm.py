"""CICM backbones (Feng et al., NeurIPS 2022, "Cross-Image Context for Single Image Inpainting").

The memory itself (generalisation, augmentation, Eq. 7-8 terms and every choice the paper leaves open) is
``inpaintlab.layers.memory``. This file attaches it to existing generators without copying them: a
``MemoryAugmented`` model owns a backbone and hooks a ``CICMBlock`` onto the output of one backbone layer,
replacing that layer's features with the augmented ones ``R`` (so everything downstream, skips included,
sees them).

* ``unet15`` stands for "a UNet with 15 convolutional layers" (Sec. 5.2; its layout is in the unavailable
  supplement). It is LGNet's pix2pix ``unet_256`` without attention, reused as ``LGNet(stages="C")`` (input
  in [-1,1] with the hole filled with +1 and the mask as a 4th channel, Tanh output; 54,414,979 parameters):
  8 stride-2 convolutions and 8 transposed convolutions, i.e. 16 convolutional layers, 15 of them before
  the output layer (8 down, 7 up). Why it stands for the paper's: it is the standard 256-px U-Net (down to
  1x1) and the count matches if the output layer is not counted; a symmetric stride-2 U-Net always has an
  even number of (transposed) convolutions, so an exact 15 needs one extra, unstated layer we would guess.
* ``unet_cicm``: ``unet15`` + CICM. ``lgnet_cicm``: CICM in LGNet's Net_G (the last, global stage).
  ``msanet_cicm``: CICM in MSA-Net's partial-convolution encoder.
* Where: the paper uses "the lowest-resolution convolution feature maps". At 256x256 the U-Net bottleneck
  is 1x1 (one region per image, which is never complete under irregular masks), so CICM sits on the
  encoder output at ``memory_depth`` stride-2 steps below the input: 4 -> a 16x16 grid of 16x16-pixel
  regions with 512 channels at 256x256 (the tiny variants: 3 -> 8x8 regions at 64x64). It is the
  lowest resolution at which "complete regions" exist in useful numbers.
* Aux terms (training mode only): ``ratio`` (Eq. 7), ``inter`` and ``intra`` (Eq. 8, ``intra`` negated).
  ``ratio``'s ground truth comes from the mask (below); only ``ratio_target="difference"`` needs
  ``forward(image, mask, target=ground_truth)`` and leaves the term out without one. Paper weights (Eq. 9), for the presets: L2 inpainting 1.0, relativistic
  adversarial (Eqs. 5-6) 0.1, ratio 1.0, inter 20, intra 0.5.
* Eq. 7 ground truth (``ratio_target="fraction"``, default): gamma-bar = the share of the region's pixels
  that differ between the network's input and the complete image's = the region's hole fraction (1 fully
  corrupted, 0 complete, 0.5 half; every backbone receives the mask, so a hole pixel differs even where the
  fill value equals its colour). It reads "accumulate and normalise the differences" (Sec. 4.3) as a
  count of differing pixels over the region's size, so gamma-bar is the ratio in [0,1] that Sec. 4.2 and
  the "w/ GT" ablation (``gamma_mode="ground_truth"``, same definition) describe. The earlier default
  ``"difference"`` (region mean of |zero-filled input - ground truth|) is a corrupted region's mean
  intensity, not a ratio: measured on photos at 256 px, fully corrupted regions got 0.37 on average and 0
  for black ones (0.04 for the same photos 10x darker), so dark holes received almost no context; it also
  used the zero-filled image while ``unet15`` fills the hole with +1. Kept as a named option.
* Softmax of Eqs. 2 and 4 (``softmax_similarity``, ``softmax_scale``): the literal ``"dot"`` (default, so
  existing checkpoints keep their output) is nearly a hard max with 512-channel features: at initialisation
  (``unet_cicm``, 256 px, batch 2, 512 regions, K = 40) 61 % of the regions put > 0.99 of their weight on
  one feature, mean weight entropy 0.17 nats (ln 40 = 3.69), and the 100 % and top-1 contexts differ by
  0.10 of the latter's norm, so "100 % aug" acts as "top-1 aug" (likewise for the update). ``"scaled_dot"``
  (F.C / sqrt(C), what the CICM presets use): no region above 0.99, entropy 3.23 nats, contexts 0.87 apart;
  ``"cosine"`` with ``softmax_scale=10`` (temperature 0.1): entropy 3.59 nats, 0.95 apart
  (``docs/audit_cicm_cstfnet.py cicm-softmax``).
* Not built (other papers' networks or methods, not specified here): Table 2's single-image clustering rows
  (k-means, RUC) and Table 3's RFR / JPG / MISF backbones; Table 2's "anchor only" and "merged" rows are
  ``memory_mode``, Table 1's rows ``update_fraction`` / ``augment_fraction``.
* Every CICM factory takes ``sets`` (L, 13), ``set_size`` (K, 40), ``memory_depth`` and the switches of
  ``CICMBlock`` / ``CrossImageMemory`` as keywords (``momentum``, ``injection``, ``update_fraction``,
  ``augment_fraction``, ``softmax_scale``, ``softmax_similarity``, ``memory_mode``, ``term_similarity``,
  ``memory_seed``, ``sync_distributed``, ``gamma_mode``, ``gamma_side``, ``ratio_target``, ``use_inter``,
  ``use_intra``).
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.memory import CICMBlock, CrossImageMemory
from ..types import SCALAR, InpaintModel, InpaintOutput, check_image_mask, masked_input
from ._registry import build, register_model
from .lgnet import LGNet, unet_width
from .msanet import PConvUNet


class MemoryAugmented(InpaintModel):
    """A generator whose layer ``site`` (a submodule of ``backbone``) is followed by a ``CICMBlock``.

    ``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole, target=None)`` -> the backbone's
    ``InpaintOutput`` with the CICM terms in ``aux`` (training mode). ``site`` may return a tensor
    (B,C,h,w) or a tuple whose first item is that tensor (partial convolutions return (features, mask)).
    """

    def __init__(self, backbone: nn.Module, site: nn.Module, channels: int, **cicm_options):
        super().__init__()
        self.backbone = backbone
        self.cicm = CICMBlock(channels, **cicm_options)
        self.size_multiple = backbone.size_multiple
        cicm, memory_mode = self.cicm, self.cicm.memory.memory_mode
        # ratio_target="difference" measures the ratio against the ground truth: training needs it.
        self.training_inputs = backbone.training_inputs | ({"target"} if cicm.ratio_target == "difference" else set())
        terms = {
            "ratio": cicm.ratio is not None,
            "inter": cicm.use_inter and memory_mode != "merged",
            "intra": cicm.use_intra and memory_mode != "anchors_only",
        }
        self.aux_terms = {**backbone.aux_terms, **{name: SCALAR for name, on in terms.items() if on}}
        self._call: dict | None = None  # the mask/target of the forward in progress, read by the hook
        site.register_forward_hook(self._augment)  # a bound method: deep copies (EMA) rebind it to the copy

    def forward(self, image: Tensor, mask: Tensor, target: Tensor | None = None) -> InpaintOutput:
        check_image_mask(image, mask)
        self._call = {"mask": mask, "masked_image": masked_input(image, mask), "target": target, "aux": None}
        try:
            out = self.backbone(image, mask)
            aux = self._call["aux"]
        finally:
            self._call = None
        if aux is None:
            raise RuntimeError("the CICM site layer did not run during the backbone's forward")
        return InpaintOutput(pred=out.pred, stages=out.stages, aux={**out.aux, **aux})

    def _augment(self, module: nn.Module, inputs: tuple, output: Tensor | tuple) -> Tensor | tuple | None:
        call = self._call
        if call is None:  # the backbone is being run on its own
            return None
        if call["aux"] is not None:
            raise RuntimeError("the CICM site layer ran twice in one forward; attach CICM to a layer used once")
        features = output[0] if isinstance(output, tuple) else output
        augmented, call["aux"] = self.cicm(features, call["mask"], call["masked_image"], call["target"])
        return (augmented, *output[1:]) if isinstance(output, tuple) else augmented


def _check_depth(memory_depth: int, num_downs: int) -> None:
    if not isinstance(memory_depth, int) or not 1 <= memory_depth <= num_downs:
        raise InpaintlabError(f"memory_depth must be an integer in 1..{num_downs} (stride-2 steps), got {memory_depth!r}")


def _unet_cicm(ngf: int, num_downs: int, memory_depth: int, sets: int, set_size: int, **options) -> MemoryAugmented:
    _check_depth(memory_depth, num_downs)
    backbone = LGNet(ngf_unet=ngf, num_downs=num_downs, stages="C")
    site = backbone.nets["C"].encoder[memory_depth - 1]
    return MemoryAugmented(backbone, site, unet_width(ngf, memory_depth), sets=sets, set_size=set_size, **options)


def _lgnet_cicm(ngf: int, num_downs: int, memory_depth: int, sets: int, set_size: int, **options) -> MemoryAugmented:
    _check_depth(memory_depth, num_downs)
    backbone = LGNet(ngf_unet=ngf, ngf_local=ngf, num_downs=num_downs)
    site = backbone.nets["G_att"].encoder[memory_depth - 1]
    return MemoryAugmented(backbone, site, unet_width(ngf, memory_depth), sets=sets, set_size=set_size, **options)


def _msanet_cicm(layers: int, base_channels: int, memory_depth: int, sets: int, set_size: int, **options) -> MemoryAugmented:
    _check_depth(memory_depth, layers)
    backbone = PConvUNet(layers=layers, base_channels=base_channels)
    base = base_channels
    channels = [base, 2 * base, 4 * base] + [8 * base] * (layers - 3)  # output of Encode_i at index i-1
    return MemoryAugmented(
        backbone, backbone.encoders[memory_depth - 1], channels[memory_depth - 1], sets=sets, set_size=set_size, **options
    )


def _unet15(ngf: int, num_downs: int) -> LGNet:
    return LGNet(ngf_unet=ngf, num_downs=num_downs, stages="C")


# Options a CICM model forwards to its CICMBlock and CrossImageMemory (besides its own memory_depth, sets, set_size).
CICM_OPTIONS = tuple(
    name
    for cls in (CICMBlock, CrossImageMemory)
    for name, p in inspect.signature(cls).parameters.items()
    if p.kind is not p.VAR_KEYWORD and name not in ("channels", "sets", "set_size")
)
FULL = {"memory_depth": 4, "sets": 13, "set_size": 40}  # the paper's memory: 13 sets of 40 at 16x16
TINY = {"memory_depth": 3, "sets": 5, "set_size": 8}


@register_model
def unet15(**options) -> LGNet:
    """The paper's 15-layer U-Net backbone without CICM (pix2pix ``unet_256``: 8 convolutions + 8 transposed
    convolutions, the module docstring says why; 54,414,979 parameters)."""
    return build(_unet15, options, ngf=64, num_downs=8)


@register_model
def unet15_tiny(**options) -> LGNet:
    """``unet15`` for CPU tests: base width 8, 6 downsamplings (64x64 inputs)."""
    return build(_unet15, options, ngf=8, num_downs=6)


@register_model
def unet_cicm(**options) -> MemoryAugmented:
    """UNet-CICM (Tables 1-4): ``unet15`` with CICM on the 16x16 encoder features at 256x256."""
    return build(_unet_cicm, options, extra=CICM_OPTIONS, ngf=64, num_downs=8, **FULL)


@register_model
def unet_cicm_tiny(**options) -> MemoryAugmented:
    """``unet_cicm`` for CPU tests: 64x64 inputs, CICM on the 8x8 encoder features (32 channels)."""
    return build(_unet_cicm, options, extra=CICM_OPTIONS, ngf=8, num_downs=6, **TINY)


@register_model
def lgnet_cicm(**options) -> MemoryAugmented:
    """LGNet with CICM on Net_G's 16x16 encoder features at 256x256 (the global stage, before its decoder)."""
    return build(_lgnet_cicm, options, extra=CICM_OPTIONS, ngf=64, num_downs=8, **FULL)


@register_model
def lgnet_cicm_tiny(**options) -> MemoryAugmented:
    """``lgnet_cicm`` for CPU tests (``lgnet_tiny`` widths, 64x64 inputs, CICM at 8x8)."""
    return build(_lgnet_cicm, options, extra=CICM_OPTIONS, ngf=8, num_downs=6, **TINY)


@register_model
def msanet_cicm(**options) -> MemoryAugmented:
    """MSA-Net with CICM on the Encode_4 output (16x16, 512 channels at 256x256)."""
    return build(_msanet_cicm, options, extra=CICM_OPTIONS, layers=8, base_channels=64, **FULL)


@register_model
def msanet_cicm_tiny(**options) -> MemoryAugmented:
    """``msanet_cicm`` for CPU tests (``msanet_tiny`` widths, 64x64 inputs, CICM on Encode_3 at 8x8)."""
    return build(_msanet_cicm, options, extra=CICM_OPTIONS, layers=6, base_channels=8, **TINY)

"""SRPNet (Luo & Zheng, Information 2022) and its base, PEN-Net (Zeng et al., CVPR 2019).

One generator class, ``PyramidInpaintNet``, builds both (Table A1 with ``cnum = 32``):

* Encoder, six levels ``cnum * (1, 2, 4, 8, 16, 16)`` = 32..512 channels from ``cat([image, mask])``:
  ``Conv3x3 s2 p1 + LeakyReLU(0.2)`` per level, then (SRPNet) one residual block (Table A1 lists one
  ``Residual_blocks`` row per level and gives no count; the parameter count assumes one).
* ATM deep to shallow (Eq. 1): ``F5 = atm5(f5, f6)``, ``F4 = atm4(f4, F5)``, ..., ``F1 = atm1(f1, F2)``
  (``layers/atm.py``); the deepest ATM matches 1x1 patches, the others 3x3 (PEN-Net ``at_conv05..01``).
* Multi-layer decoder (Sec. 3.3): ``eta5 = DeConv(up(f6))``, ``eta_{k-1} = DeConv(up(cat[eta_k, F_k]))``,
  where DeConv = bilinear x2 (align_corners=True) + Conv3x3 + ReLU; ``Output_k = Tanh(Conv1x1(cat[eta_k,
  F_k]))`` at 1/32 .. 1/2 of the input and ``Output6`` = bilinear x2, Conv3x3 64->32 + ReLU, Conv3x3 -> 3 + Tanh.

``forward(image [0,1], mask 1=hole) -> InpaintOutput(pred, stages=(), aux={"pyramid": (Output1..Output5)})``,
all in [0,1], coarsest first (1/32 .. 1/2 of the input side). ``losses.pyramid_l1`` is the pyramid loss.

Choices where the paper is silent or self-contradictory (each a keyword argument; PEN-Net facts from
implementation notes 3.2 fill the gaps):

* ``residual_blocks``: Table A1's ``Residual_blocks`` row reads "kernel 3, stride 2, padding 0, ReLU", which
  cannot be literal (a stride would break the six-level size arithmetic). It matches EdgeConnect's block
  (ref. [15]): ``pad(d), Conv3x3 dilation d, IN, ReLU, pad(1), Conv3x3, IN`` + identity, with "stride 2" read
  as dilation 2 (``res_dilation``) and explicit reflection padding (``res_padding``). Instance normalisation
  (Sec. 3.1) sits inside these blocks only; the convs have no bias since IN follows. Reflection needs a side
  larger than the pad, so maps that small (the deepest levels of inputs below 256) are replicate-padded.
* ``atm_out``: Table A1's ``ATMConv`` rows are 1x1 C->C convs at all five ATMs (no activation listed);
  PEN-Net instead uses its dilated fuse at ATMs 4..1 and nothing at ATM 5 (``"pennet"``).
* ``atm_fill``: Eq. 4 fills the hole of the shallow map ("hole", SRPNet default); PEN-Net's code replaces the
  whole map ("all", PEN-Net default).
* ``atm_match``: Eqs. 2-3 normalise query patches too and softmax over valid keys only ("cosine"); PEN-Net's
  code does neither ("pennet", default for both: SRPNet builds on that code; see ``layers/atm.py``).
* The encoder's last level uses LeakyReLU in Table A1 and ReLU in PEN-Net (``last_relu``).
* Input in [-1,1] with the hole set to +1 (PEN-Net trainer ``images*(1-m) + m``); init N(0, 0.02).

Table 5 ablation = three runs of this code: Baseline = ``pennet`` with discriminator ``pennet``
(PEN-Net's SN-PatchGAN); +Discriminator = ``pennet`` with ``srpnet`` (global + local, Table A2);
+Residual blocks (ours) = ``srpnet`` with ``srpnet``. ``srpnet(residual_blocks=False)`` isolates the blocks
from SRPNet's other Table A1 changes. Parameters: ``srpnet`` 20,801,778, ``pennet`` 10,231,538.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.atm import AttentionTransfer
from ..layers.blocks import init_pix2pix_weights
from ..types import PYRAMID, InpaintModel, InpaintOutput, check_image_mask, check_size_multiple, masked_input
from ._registry import build, register_model

LEVEL_WIDTHS = (1, 2, 4, 8, 16, 16)  # encoder channels in units of cnum, shallow to deep
LEVELS = len(LEVEL_WIDTHS)


def instance_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """(B,C,H,W) -> (B,C,H,W) normalised per sample and channel over H x W (biased variance).

    Equals ``F.instance_norm``, which refuses 1x1 maps (the deepest level of a 64x64 input); there it gives 0.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


class ResidualBlock(nn.Module):
    """EdgeConnect-style block: (B,C,H,W) -> (B,C,H,W), ``x + [pad d, Conv3x3 dil d, IN, ReLU, pad 1, Conv3x3, IN](x)``.

    Instance norm without affine parameters (EdgeConnect's ``InstanceNorm2d``), see ``instance_norm``.
    """

    def __init__(self, channels: int, dilation: int = 2, padding: str = "reflect"):
        super().__init__()
        if padding not in ("reflect", "replicate", "zeros"):
            raise InpaintlabError(f"res_padding must be 'reflect', 'replicate' or 'zeros', got {padding!r}")
        if dilation < 1:
            raise InpaintlabError(f"res_dilation must be >= 1, got {dilation}")
        self.dilation, self.padding = dilation, padding
        self.conv1 = nn.Conv2d(channels, channels, 3, dilation=dilation, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=False)

    def _pad(self, x: Tensor, pad: int) -> Tensor:
        if self.padding == "zeros":
            return F.pad(x, (pad,) * 4)
        mode = "reflect" if self.padding == "reflect" and min(x.shape[-2:]) > pad else "replicate"
        return F.pad(x, (pad,) * 4, mode=mode)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(instance_norm(self.conv1(self._pad(x, self.dilation))))
        return x + instance_norm(self.conv2(self._pad(y, 1)))


def upsample2(x: Tensor) -> Tensor:
    """(B,C,H,W) -> (B,C,2H,2W), bilinear with align_corners=True (PEN-Net)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def conv_act(cin: int, cout: int, stride: int, act: nn.Module) -> nn.Sequential:
    """Conv3x3 (padding 1, bias) followed by ``act``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act)


class PyramidInpaintNet(InpaintModel):
    """PEN-Net / SRPNet generator (module docstring). H and W must be multiples of 64.

    ``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole)`` -> ``InpaintOutput(pred (B,3,H,W),
    aux={"pyramid": (B,3,H/32,W/32) .. (B,3,H/2,W/2)})``, all in [0,1].
    """

    size_multiple = 2**LEVELS
    aux_terms = MappingProxyType({"pyramid": PYRAMID})  # Output1..Output5, scored by pyramid_l1

    def __init__(
        self,
        cnum: int = 32,
        residual_blocks: bool = True,
        res_dilation: int = 2,
        res_padding: str = "reflect",
        atm_out: str = "conv1x1",
        atm_fill: str = "hole",
        atm_ksizes: tuple[int, ...] = (1, 3, 3, 3, 3),
        softmax_scale: float = 10.0,
        last_relu: bool = False,
        atm_match: str = "pennet",
    ):
        super().__init__()
        if cnum < 4 or cnum % 4:
            raise InpaintlabError(f"cnum must be a positive multiple of 4, got {cnum}")
        if atm_out not in ("conv1x1", "pennet"):
            raise InpaintlabError(f"atm_out must be 'conv1x1' (SRPNet Table A1) or 'pennet', got {atm_out!r}")
        if len(atm_ksizes) != LEVELS - 1:
            raise InpaintlabError(f"atm_ksizes needs {LEVELS - 1} patch sizes (deep to shallow), got {atm_ksizes}")
        widths = [cnum * m for m in LEVEL_WIDTHS]
        self.encoder = nn.ModuleList()
        for level, (cin, cout) in enumerate(zip([4, *widths[:-1]], widths)):
            act = nn.ReLU() if last_relu and level == LEVELS - 1 else nn.LeakyReLU(0.2)
            layers = [conv_act(cin, cout, 2, act)]
            if residual_blocks:
                layers.append(ResidualBlock(cout, res_dilation, res_padding))
            self.encoder.append(nn.Sequential(*layers))
        # ATM k fills encoder level k (0-based, levels 0..4) from level k+1; stored shallow to deep.
        self.atms = nn.ModuleList()
        for level in range(LEVELS - 1):
            out_layer = "conv1x1" if atm_out == "conv1x1" else ("none" if level == LEVELS - 2 else "dilated_fuse")
            ksize = atm_ksizes[LEVELS - 2 - level]
            self.atms.append(AttentionTransfer(widths[level], ksize, softmax_scale, atm_fill, out_layer, atm_match))
        # Decoder step k (level k) takes up(eta_{k+1} ++ F_{k+1}) (just up(f6) at the deepest) -> widths[k].
        self.decoder = nn.ModuleList()
        for level in range(LEVELS - 1):
            cin = widths[-1] if level == LEVELS - 2 else 2 * widths[level + 1]
            self.decoder.append(conv_act(cin, widths[level], 1, nn.ReLU()))
        self.to_rgb = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * w, 3, 1), nn.Tanh()) for w in widths[:-1])
        self.final = nn.Sequential(conv_act(2 * cnum, cnum, 1, nn.ReLU()), nn.Conv2d(cnum, 3, 3, 1, 1), nn.Tanh())
        init_pix2pix_weights(self)

    def forward(self, image: Tensor, mask: Tensor) -> InpaintOutput:
        """image (B,3,H,W) in [0,1], mask (B,1,H,W) 1 = hole -> pred (B,3,H,W) + aux pyramid (coarsest first)."""
        check_image_mask(image, mask)
        check_size_multiple(image, self.size_multiple, "The SRPNet/PEN-Net generator")
        image = masked_input(image, mask)
        x = torch.cat([(image * 2 - 1) * (1 - mask) + mask, mask], dim=1)
        feats = []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        for level in range(LEVELS - 2, -1, -1):  # Eq. 1: deep to shallow, each from the already filled deeper map
            feats[level] = self.atms[level](feats[level], feats[level + 1], mask)
        eta = feats[-1]
        pyramid = []
        for level in range(LEVELS - 2, -1, -1):
            eta = torch.cat([self.decoder[level](upsample2(eta)), feats[level]], dim=1)
            pyramid.append(self.to_rgb[level](eta))
        pred = self.final(upsample2(eta))
        return InpaintOutput(pred=(pred + 1) / 2, aux={"pyramid": tuple((p + 1) / 2 for p in pyramid)})


PENNET_STYLE = {"residual_blocks": False, "atm_out": "pennet", "atm_fill": "all", "last_relu": True}


@register_model
def srpnet(**options) -> PyramidInpaintNet:
    """SRPNet generator (Table A1): residual pyramid encoder, 1x1 ATMConv, multi-layer decoder; 20,801,778 params."""
    return build(PyramidInpaintNet, options)


@register_model
def srpnet_tiny(**options) -> PyramidInpaintNet:
    """SRPNet with ``cnum=8`` (8..128 channels) for CPU tests at 64x64."""
    return build(PyramidInpaintNet, options, cnum=8)


@register_model
def pennet(**options) -> PyramidInpaintNet:
    """PEN-Net baseline (notes 3.2): no residual blocks, dilated ATN fuse, whole-map transfer; 10,231,538 params."""
    return build(PyramidInpaintNet, options, **PENNET_STYLE)


@register_model
def pennet_tiny(**options) -> PyramidInpaintNet:
    """PEN-Net with ``cnum=8`` for CPU tests at 64x64."""
    return build(PyramidInpaintNet, options, **PENNET_STYLE, cnum=8)

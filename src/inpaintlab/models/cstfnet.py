"""CSTFNet: Contrastive structure and texture fusion for image inpainting (Chen et al., Neurocomputing 2023).

No official code; the paper is the specification and its cited building blocks fill the gaps.

* Net_C (Sec. 3.1): U-Net on ``cat([masked image, mask])`` with eight stride-2 downsamplings and eight
  upsamplings, every (transposed) convolution 3x3 with stride 2 (``ConvTranspose k3 s2 p1 op1`` up).
* Refinement (Sec. 3.2, Algorithm 1): encoder f -> six-level pyramid, STI (structure from the adjacent deeper
  level, texture from the adjacent shallower one, ``layers/sti.py``), STF per level, decoder whose layer at
  each level gets the fused feature added (skip by addition, Sec. 3.2.3).
* Siamese contrastive learning (Sec. 3.2.1, Eqs. 7-9, 20): in training with ``mask2``, branch 2 runs the same
  weights on the image masked by ``mask2``; ``aux["contrastive"]`` = SimSiam's symmetric negative cosine
  with stop-gradient on z, ``aux["feature_l2"]`` = Eq. 20 between the two branches' decoder features.

``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1=hole, mask2=None) -> InpaintOutput(pred, stages=(coarse,),
aux)``; pred/coarse raw (not composited) in [0,1]; aux is empty unless training with ``mask2``. H and W must
be multiples of ``size_multiple`` = 2**max(coarse_downs, levels). Because ``forward`` declares ``mask2``, the
trainer draws a second mask per sample and calls ``model(image, mask, mask2)``.

Choices where the paper is silent (each a keyword argument where it is a real alternative):
* Net_C follows pix2pix's ``unet_256`` (U-Net [34] as LGNet's Net_C [36], whose LSGAN recipe the paper
  reuses): widths ``ngf*min(2**d, 8)`` (d = 0 first), BatchNorm (none at the innermost level), LeakyReLU(0.2)
  down, ReLU up, skip concatenation, Tanh out; internally images are in [-1,1] and the hole is 0 after zeroing.
  Biases on the convolutions no BatchNorm follows (the first, the innermost, the output); pix2pix has them
  off everywhere but the output (576 parameters at ngf 64).
* Refinement input = ``cat([coarse composited with the known pixels (Eq. 4), mask])``; with ``coarse=False``
  (Table 4 "wo/Coarse") the masked image itself.
* Encoder f = PEN-Net's six levels (the STI pairing is PEN-Net's ATN geometry): ``Conv3x3 s2 + LeakyReLU(0.2)``,
  widths ``cnum*(1,2,4,8,16,16)``, no normalisation. Decoder: ``ConvTranspose k4 s2 + ReLU`` per level (the
  paper's style loss is motivated by transposed-convolution artefacts), then ``Conv3x3 -> 3 + Tanh``.
* STI pairs every two adjacent levels: the deepest level has no structure branch and the shallowest no
  texture branch; the missing branch (and an ablated one: ``structure=False``/``texture=False``) is the
  level's unrepaired encoder feature, so STF always fuses two maps. ``cascade=False`` computes every score
  on the raw encoder features (Algorithm 1 feeds X_down to both repairs); ``cascade=True`` takes the guide
  from the already-repaired neighbour (structure deep-to-shallow, texture shallow-to-deep).
* STI attention (``layers/sti.py``): ``softmax_scale`` = 10 as in DeepFill [6], the formulation the paper
  cites (1 = Eq. 11 as printed, near-uniform weights); hole cells of a level by max pooling.
* STF gate: Eq. 14 as printed (``stf_gate="none"``); ``"sigmoid"`` bounds it. ``fusion="concat"`` is Table 4's
  "wo/Fusion" (concatenation + one 3x3 conv).
* Contrastive head (SimSiam, notes 3.5, dims scaled to the encoder): latent = global average pool of the
  deepest encoder level f(x); projector ``Linear(C,C), BN, ReLU, Linear(C,C), BN, ReLU, Linear(C,d), BN(affine
  off)`` (no biases before BN), predictor ``Linear(d,d/4), BN, ReLU, Linear(d/4,d)``, d = ``proj_dim`` (C by default).
  Training it needs a batch of at least 2 (BatchNorm1d).
* Eq. 20 (``feature_l2``; decoder layers = each upsampling's output, after the skip addition, at 1/2**(L-1)
  .. 1 of the input; per-sample distances averaged over the batch, summed over layers):
  ``"normalized"`` (default) = ||X1_i/||X1_i|| - X2_i/||X2_i|| ||_2, in [0, 2] per layer. Reason, measured
  (``docs/audit_cicm_cstfnet.md``): the literal ``"norm"`` = ||X1_i - X2_i||_2 of the whole map grows with
  the map size (fresh ``cstfnet``, batch 2: 151 / 408 / 769 at 64 / 128 / 256 px, against ~3.9 for all
  pixel terms), so no fixed weight balances it, and the refinement net (no normalisation) lowers it by
  shrinking its activations: in a 180-step ``cstfnet_tiny`` run (weight 0.01) the term halved while the
  decoder features ended at 0.4x the RMS of a run without the term, and a scale-invariant distance (per-
  channel means removed) ended where it ended without the term (3.40 vs 3.39): no alignment was learned.
  ``"rms"`` (the norm over sqrt(C_i H_i W_i)) fixes the size but not the shrinking (same run: RMS 0.56x,
  distance 3.51). The normalised form is the L2 distance of Eq. 20 on unit-norm maps (BYOL's form of the
  negative cosine that Eq. 9 uses): 5.3 / 4.1 / 4.2 at 64 / 128 / 256 px, and in the same run (weight 0.1)
  the scale-invariant distance fell 4.13 -> 1.74 while the features grew (1.6x the RMS without the term).
  ``"norm"`` (literal) and ``"mse"`` (mean squared difference) stay available.
* Only branch 1's pred/coarse are returned; branch 2 is trained through the aux terms only.
* Init (the paper gives none): pix2pix/PEN-Net N(0, 0.02) for Net_C, the CBAM MLPs and 2-D BatchNorm
  (global torch RNG), PyTorch defaults for the SimSiam heads, and ``refine_init="kaiming"`` (He normal,
  fan-in, LeakyReLU 0.2) for the refinement convolutions. Reason, measured: the refinement net has no
  normalisation, so at N(0, 0.02) each layer scales the signal by ~0.02*sqrt(9C) ~ 0.3 and its output is
  a constant ~0.5; in a 220-step CPU run of ``cstfnet_tiny`` that output still had std 0.006 (validation
  PSNR 16.7 -> 17.0 dB) while Net_C had learned. ``refine_init="normal"`` keeps N(0, 0.02) everywhere.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError
from ..layers.blocks import init_pix2pix_weights
from ..layers.sti import ConcatFusion, StructureTextureFusion, StructureTextureInpainting, pyramid_masks
from ..types import SCALAR, InpaintModel, InpaintOutput, check_image_mask, check_size_multiple, masked_input
from ._registry import build, register_model
from .lgnet import unet_width

LEVEL_WIDTHS = (1, 2, 4, 8, 16, 16)  # refinement encoder widths in units of cnum, shallow to deep


class CoarseUNet(nn.Module):
    """Net_C: (B,4,H,W) [-1,1] masked image + mask -> (B,3,H,W) in [-1,1]; H, W multiples of 2**num_downs."""

    def __init__(self, ngf: int = 64, num_downs: int = 8, in_channels: int = 4, out_channels: int = 3):
        super().__init__()
        if num_downs < 2:
            raise InpaintlabError(f"coarse_downs must be >= 2, got {num_downs}")
        width = [in_channels] + [unet_width(ngf, d) for d in range(1, num_downs + 1)]
        self.encoder = nn.ModuleList([nn.Conv2d(in_channels, width[1], 3, 2, 1)])
        for d in range(1, num_downs):
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(width[d], width[d + 1], 3, 2, 1, bias=d == num_downs - 1)]
            if d < num_downs - 1:
                layers.append(nn.BatchNorm2d(width[d + 1]))
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList()
        for d in range(num_downs, 1, -1):
            in_ch = width[d] if d == num_downs else 2 * width[d]
            self.decoder.append(
                nn.Sequential(
                    nn.ReLU(),
                    nn.ConvTranspose2d(in_ch, width[d - 1], 3, 2, 1, output_padding=1, bias=False),
                    nn.BatchNorm2d(width[d - 1]),
                )
            )
        self.decoder.append(
            nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * width[1], out_channels, 3, 2, 1, output_padding=1), nn.Tanh())
        )

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder[:-1]:
            x = torch.cat([skips.pop(), block(x)], dim=1)
        return self.decoder[-1](x)


class Branch(NamedTuple):
    """One siamese branch: pred/coarse (B,3,H,W) in [-1,1] (coarse None without Net_C), latent f(x)
    (B,C,h,w) at the deepest level, decoder_features shallowest last."""

    pred: Tensor
    coarse: Tensor | None
    latent: Tensor
    decoder_features: list[Tensor]


class RefinementNet(nn.Module):
    """Encoder f + STI + STF + additive-skip decoder. (B,4,H,W), mask (B,1,H,W) -> (out [-1,1], latent, dec feats)."""

    def __init__(
        self,
        cnum: int,
        levels: int,
        structure: bool,
        texture: bool,
        fusion: str,
        cascade: bool,
        sti_ksize: int,
        softmax_scale: float,
        stf_gate: str,
    ):
        super().__init__()
        widths = [cnum * LEVEL_WIDTHS[min(i, len(LEVEL_WIDTHS) - 1)] for i in range(levels)]
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2)) for cin, cout in zip([4] + widths[:-1], widths)
        )
        self.sti = StructureTextureInpainting(sti_ksize, softmax_scale)
        if fusion == "stf":
            self.fusions = nn.ModuleList(StructureTextureFusion(w, stf_gate) for w in widths)
        else:
            self.fusions = nn.ModuleList(ConcatFusion(w) for w in widths)
        self.ups = nn.ModuleList(  # ups[i]: level i+1 -> level i
            nn.Sequential(nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1), nn.ReLU()) for i in range(levels - 1)
        )
        self.final_up = nn.Sequential(nn.ConvTranspose2d(widths[0], widths[0], 4, 2, 1), nn.ReLU())
        self.to_rgb = nn.Sequential(nn.Conv2d(widths[0], 3, 3, padding=1), nn.Tanh())
        self.structure, self.texture, self.cascade = structure, texture, cascade

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        feats = []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        top = len(feats) - 1
        masks = pyramid_masks(mask, len(feats))  # masks[i] matches feats[i]
        structure, texture = list(feats), list(feats)  # unrepaired where a branch is absent
        if self.structure:
            for i in range(top - 1, -1, -1):  # deep to shallow: level i from level i+1's scores
                guide = structure[i + 1] if self.cascade else feats[i + 1]
                structure[i] = self.sti.structure(feats[i], guide, masks[i], masks[i + 1])
        if self.texture:
            for i in range(1, top + 1):  # shallow to deep: level i from level i-1's scores
                guide = texture[i - 1] if self.cascade else feats[i - 1]
                texture[i] = self.sti.texture(guide, feats[i], masks[i - 1], masks[i])
        fused = [fuse(t, s) for fuse, t, s in zip(self.fusions, texture, structure)]
        d = fused[top]
        decoder_features = []
        for i in range(top - 1, -1, -1):
            d = self.ups[i](d) + fused[i]
            decoder_features.append(d)
        d = self.final_up(d)
        decoder_features.append(d)
        return self.to_rgb(d), feats[top], decoder_features


def projector_head(channels: int, dim: int) -> nn.Sequential:
    """SimSiam projector g: (B,channels) -> (B,dim), ending in affine-free BatchNorm."""
    return nn.Sequential(
        nn.Linear(channels, channels, bias=False),
        nn.BatchNorm1d(channels),
        nn.ReLU(),
        nn.Linear(channels, channels, bias=False),
        nn.BatchNorm1d(channels),
        nn.ReLU(),
        nn.Linear(channels, dim, bias=False),
        nn.BatchNorm1d(dim, affine=False),
    )


def predictor_head(dim: int, hidden: int) -> nn.Sequential:
    """SimSiam predictor h: (B,dim) -> (B,dim) through a ``hidden`` bottleneck."""
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Eq. 9: ``0.5*D(p1, sg(z2)) + 0.5*D(p2, sg(z1))``, D = negative cosine (Eq. 7), averaged over the batch.

    p1, p2, z1, z2: (B,d). No gradient reaches z1 or z2 (stop-gradient); the value lies in [-1, 1].
    """
    return -0.5 * (F.cosine_similarity(p1, z2.detach(), dim=1).mean() + F.cosine_similarity(p2, z1.detach(), dim=1).mean())


FEATURE_L2 = ("normalized", "rms", "norm", "mse")


def decoder_feature_distance(feats1: list[Tensor], feats2: list[Tensor], reduction: str = "norm") -> Tensor:
    """Eq. 20 between two lists of (B,C_i,H_i,W_i) maps: sum over i of the batch mean of a per-sample distance.

    "norm": ||X1_i - X2_i||_2 of the whole map (literal; grows with the map size); "rms": that norm over
    sqrt(C_i H_i W_i); "normalized": ||X1_i/||X1_i|| - X2_i/||X2_i|| ||_2 in [0, 2] (neither the map size nor
    the features' scale changes it); "mse": the mean squared difference.
    """
    if reduction not in FEATURE_L2:
        raise InpaintlabError(f"feature_l2 must be one of {', '.join(FEATURE_L2)}, got {reduction!r}")
    total = feats1[0].new_zeros(())
    for a, b in zip(feats1, feats2, strict=True):
        a, b = a.flatten(1), b.flatten(1)
        if reduction == "normalized":
            a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        diff = a - b
        if reduction == "mse":
            total = total + diff.pow(2).mean()
        else:
            scale = math.sqrt(diff.shape[1]) if reduction == "rms" else 1.0
            total = total + diff.norm(dim=1).mean() / scale
    return total


class CSTFNet(InpaintModel):
    """Coarse U-Net + siamese refinement network (module docstring: contract and choices).

    ``forward(image (B,3,H,W) [0,1], mask (B,1,H,W) 1 = hole, mask2 (B,1,H,W) or None)`` ->
    ``InpaintOutput(pred (B,3,H,W), stages=(coarse (B,3,H,W),) or (), aux)``, all in [0,1].
    """

    def __init__(
        self,
        ngf: int = 64,
        coarse_downs: int = 8,
        cnum: int = 32,
        levels: int = 6,
        structure: bool = True,
        texture: bool = True,
        coarse: bool = True,
        contrastive: bool = True,
        fusion: str = "stf",
        cascade: bool = False,
        sti_ksize: int = 3,
        softmax_scale: float = 10.0,
        stf_gate: str = "none",
        proj_dim: int | None = None,
        pred_dim: int | None = None,
        feature_l2: str = "normalized",
        refine_init: str = "kaiming",
    ):
        super().__init__()
        if fusion not in ("stf", "concat"):
            raise InpaintlabError(f"CSTFNet fusion must be 'stf' or 'concat', got {fusion!r}")
        if feature_l2 not in FEATURE_L2:
            raise InpaintlabError(f"CSTFNet feature_l2 must be one of {', '.join(FEATURE_L2)}, got {feature_l2!r}")
        if not 2 <= levels <= len(LEVEL_WIDTHS):
            raise InpaintlabError(f"CSTFNet levels must lie in 2..{len(LEVEL_WIDTHS)}, got {levels}")
        if refine_init not in ("kaiming", "normal"):
            raise InpaintlabError(f"CSTFNet refine_init must be 'kaiming' or 'normal', got {refine_init!r}")
        if stf_gate not in ("none", "sigmoid"):
            raise InpaintlabError(f"CSTFNet stf_gate must be 'none' or 'sigmoid', got {stf_gate!r}")
        if sti_ksize < 1 or sti_ksize % 2 == 0:
            raise InpaintlabError(f"CSTFNet sti_ksize must be a positive odd number, got {sti_ksize}")
        self.coarse_net = CoarseUNet(ngf, coarse_downs) if coarse else None
        self.refine = RefinementNet(cnum, levels, structure, texture, fusion, cascade, sti_ksize, softmax_scale, stf_gate)
        init_pix2pix_weights(self)
        if refine_init == "kaiming":
            for m in self.refine.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
        self.contrastive = contrastive
        if contrastive:
            latent_channels = cnum * LEVEL_WIDTHS[levels - 1]
            proj_dim = proj_dim or latent_channels
            self.projector = projector_head(latent_channels, proj_dim)
            self.predictor = predictor_head(proj_dim, pred_dim or max(proj_dim // 4, 1))
        self.feature_l2 = feature_l2
        # The siamese branch runs on mask2 in training only when the contrastive terms are on.
        self.training_inputs = frozenset({"mask2"}) if contrastive else frozenset()
        self.aux_terms = {"contrastive": SCALAR, "feature_l2": SCALAR} if contrastive else {}
        self.size_multiple = 2 ** max(coarse_downs if coarse else 0, levels)

    def run_branch(self, image: Tensor, mask: Tensor) -> Branch:
        """One branch on an already hole-zeroed (B,3,H,W) [0,1] image and its (B,1,H,W) mask."""
        known = (image * 2 - 1) * (1 - mask)  # [-1,1], hole = 0
        coarse = None
        x = known
        if self.coarse_net is not None:
            coarse = self.coarse_net(torch.cat([known, mask], dim=1))
            x = known + coarse * mask  # Eq. 4
        pred, latent, decoder_features = self.refine(torch.cat([x, mask], dim=1), mask)
        return Branch(pred, coarse, latent, decoder_features)

    def contrastive_terms(self, first: Branch, second: Branch) -> dict[str, Tensor]:
        """SimSiam loss on the two latents (Eq. 9) and the decoder-feature term (Eq. 20): two scalars."""
        z1 = self.projector(first.latent.mean(dim=(2, 3)))
        z2 = self.projector(second.latent.mean(dim=(2, 3)))
        return {
            "contrastive": simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2),
            "feature_l2": decoder_feature_distance(first.decoder_features, second.decoder_features, self.feature_l2),
        }

    def forward(self, image: Tensor, mask: Tensor, mask2: Tensor | None = None) -> InpaintOutput:
        check_image_mask(image, mask)
        image1 = masked_input(image, mask)
        two_branches = self.training and self.contrastive and mask2 is not None
        if two_branches:
            check_image_mask(image, mask2)
            image2 = masked_input(image, mask2)
            if image.shape[0] < 2:
                raise InpaintlabError("CSTFNet contrastive training needs a batch of at least 2 (BatchNorm in the projector)")
        check_size_multiple(image, self.size_multiple, "CSTFNet")
        first = self.run_branch(image1, mask)
        aux = self.contrastive_terms(first, self.run_branch(image2, mask2)) if two_branches else {}
        stages = () if first.coarse is None else ((first.coarse + 1) / 2,)
        return InpaintOutput(pred=(first.pred + 1) / 2, stages=stages, aux=aux)


@register_model
def cstfnet(**options) -> CSTFNet:
    """CSTFNet at 256x256 (Net_C 8 downsamplings, 6-level refinement); options = Table 4 ablations and choices."""
    return build(CSTFNet, options)


@register_model
def cstfnet_tiny(**options) -> CSTFNet:
    """Small CSTFNet for CPU tests at 64x64: Net_C ngf 8 with 6 downsamplings, 4 refinement levels at cnum 8."""
    return build(CSTFNet, options, ngf=8, coarse_downs=6, cnum=8, levels=4)

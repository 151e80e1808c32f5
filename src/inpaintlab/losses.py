"""Training losses: functional terms plus ``GeneratorLoss`` / ``DiscriminatorLoss`` driven by ``LossConfig``.

Everything takes images (B,3,H,W) in [0,1] and masks (B,1,H,W) with 1 = hole, and is generic over
models: pixel terms apply to every entry of ``InpaintOutput.outputs``, feature terms (perceptual,
style, TV) to the indices in ``LossConfig.feature_outputs``, the adversarial term to the image(s) chosen
by ``LossConfig.adv_input``, and ``InpaintOutput.aux`` terms are weighted by name: a scalar is used as
is, a tuple of coarser images (``aux["pyramid"]``, coarsest first) gets ``pyramid_l1`` against the
downsampled ground truth.

Discriminators are called ``D(image, mask)`` when they declare ``takes_mask`` (``InpaintDiscriminator``; the
SRPNet local D crops the hole), else ``D(image)``; a D may return one logits map or a list of them
(SRPNet global + local), and every GAN term is the mean over that list.

LGNet (official ``models/loss.py``, implementation-notes 1.7; the paper's Eq. 1 divides by sum(M) only):
  valid/hole L1 per image = sum over masked pixels / (3 * sum(mask)), averaged over the batch, computed on
  [-1,1] images like the official code (``pixel_range="minus1_1"``, also for TV);
  perceptual = sum_l mean|phi_l(a) - phi_l(b)| over VGG16 pool1..pool3;
  style = sum_l mean|G_l(a) - G_l(b)| with G = F F^T / (C*H*W);
  TV = mean|dx| + mean|dy| (over the whole tensor);
  adversarial = LSGAN on the composite of the *first* stage (official code; ``adv_input``).
MSA-Net (official MANet, implementation-notes 2.1) differs by options only: ``pixel_norm="all_pixels"``,
``vgg_input="unit"``, ``gan_mode="nsgan"``, ``adv_input="final_raw"`` (see ``presets.py``).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossConfig
from .errors import InpaintlabError
from .metrics import LATTICE_PERIOD, LATTICE_TILE, lattice_classes
from .types import AUX_KINDS, PYRAMID, SCALAR, InpaintModel, InpaintOutput, composite, discriminator_contract

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------ functional


def pixel_loss(
    pred: Tensor, target: Tensor, region: Tensor, distance: str = "l1", norm: str = "region", eps: float = 1e-12
) -> Tensor:
    """Distance between pred and target (B,C,H,W) inside ``region`` (B,1,H,W), weights in [0,1].

    distance: "l1" = |pred-target|, "l2" = (pred-target)^2 (CICM's L2 inpainting loss).
    norm: "region" = per image ``sum(err * region) / (C * sum(region))``, averaged over the batch (LGNet,
    CSTFNet Eqs. 1-2; an image whose region is empty contributes 0); "all_pixels" = ``mean(err * region)``
    over every element (official MANet), so the term shrinks with the region's area.
    """
    if distance not in ("l1", "l2"):
        raise InpaintlabError(f"unknown loss.pixel_distance {distance!r}; expected l1 or l2")
    err = (pred - target).abs() if distance == "l1" else (pred - target) ** 2
    if norm == "all_pixels":
        return (err * region).mean()
    if norm != "region":
        raise InpaintlabError(f"unknown loss.pixel_norm {norm!r}; expected region or all_pixels")
    per_image = (err * region).sum(dim=(1, 2, 3))
    return (per_image / (pred.shape[1] * region.sum(dim=(1, 2, 3)) + eps)).mean()


def masked_l1(pred: Tensor, target: Tensor, region: Tensor, eps: float = 1e-12) -> Tensor:
    """Per image ``sum(|pred-target| * region) / (C * sum(region))``, averaged over the batch (LGNet).

    pred, target: (B,C,H,W); region: (B,1,H,W) weights in [0,1] (the hole mask or ``1 - mask``).
    An image whose region is empty contributes 0.
    """
    return pixel_loss(pred, target, region, "l1", "region", eps)


def pyramid_l1(outputs: tuple[Tensor, ...], image: Tensor, mode: str = "bilinear") -> Tensor:
    """Pyramid loss (PEN-Net, SRPNet Sec. 3.3): sum over scales of mean |output_s - resize(image, s)|.

    outputs: (B,3,h_s,w_s) images in [0,1]; image: (B,3,H,W) ground truth in [0,1]. ``mode`` "bilinear"
    resizes with align_corners=True (PEN-Net's trainer), "area" averages pixel blocks. In [0,1] the value is
    half of PEN-Net's (it works in [-1,1]). Returns a scalar tensor.
    """
    if mode not in ("bilinear", "area"):
        raise InpaintlabError(f"pyramid downsampling must be 'bilinear' or 'area', got {mode!r}")
    total = image.new_zeros(())
    for out in outputs:
        size = out.shape[-2:]
        if mode == "bilinear":
            target = F.interpolate(image, size=size, mode="bilinear", align_corners=True)
        else:
            target = F.interpolate(image, size=size, mode="area")
        total = total + F.l1_loss(out, target)
    return total


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic TV: ``mean|x[..., 1:, :] - x[..., :-1, :]| + mean|x[..., 1:] - x[..., :-1]|``; x (B,C,H,W)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


def gram_matrix(features: Tensor) -> Tensor:
    """(B,C,H,W) -> (B,C,C) Gram matrix ``F F^T / (C*H*W)``, computed in float32."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


DETAIL_ENERGY_SCALES = (2, 4)  # average-pooling factors: each cancels any pattern that repeats every 2 pixels
DETAIL_ENERGY_TILE = 4  # pooled pixels per side of the tiles over which the energy is averaged


def detail_energy(image: Tensor, scale: int, tile: int = DETAIL_ENERGY_TILE) -> Tensor:
    """Local texture energy at one scale: (B,3,H,W) -> (B,1,H//(scale*tile),W//(scale*tile)).

    The mean |4-neighbour Laplacian| (replicate border) of the grey image average-pooled by ``scale``, over
    ``tile`` x ``tile`` tiles. A pattern that alternates every pixel (the grid of a stride-2 transposed
    convolution) averages to 0 in each 2x2 pool, so it adds no energy at any scale >= 2.
    """
    grey = F.avg_pool2d(image.mean(dim=1, keepdim=True), scale)
    taps = grey.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    lap = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), taps[None, None])
    return F.avg_pool2d(lap.abs(), tile)


def detail_energy_loss(
    comp: Tensor, image: Tensor, mask: Tensor, scales: tuple[int, ...] = DETAIL_ENERGY_SCALES, eps: float = 1e-8
) -> Tensor:
    """Texture-energy distance of a composite ``comp`` to the original ``image`` (both (B,3,H,W), [0,1]) over the
    hole ``mask`` (B,1,H,W): per scale, the mean over tiles of |energy(comp) - energy(image)| (``detail_energy``)
    weighted by each tile's hole fraction, then the mean over ``scales``. 0 where the fill has the photo's
    texture energy, whatever its phase; a smooth fill in a textured hole scores its missing energy.
    """
    total = comp.new_zeros(())
    for scale in scales:
        weight = F.avg_pool2d(mask, scale * DETAIL_ENERGY_TILE)
        gap = (detail_energy(comp, scale) - detail_energy(image, scale)).abs()
        total = total + (weight * gap).sum() / (weight.sum() + eps)
    return total / len(scales)


SPECTRUM_TILE = 32  # pixels per side of the tiles whose amplitude spectra are compared


def local_spectrum(image: Tensor, tile: int = SPECTRUM_TILE, eps: float = 1e-8) -> Tensor:
    """Log amplitude spectra of the grey image's tiles: (B,3,H,W) -> (B,N,tile,tile//2+1), N = (H//tile)*(W//tile)
    in row-major order. Each tile has its mean removed and a 2-D Hann window applied before the FFT; the value is
    log(1 + |FFT|) (the modulus with ``eps`` inside the root: finite gradients at 0)."""
    b = image.shape[0]
    tiles = F.unfold(image.mean(dim=1, keepdim=True), tile, stride=tile)  # (B, tile*tile, N)
    tiles = tiles.transpose(1, 2).reshape(b, -1, tile, tile)
    hann = torch.hann_window(tile, periodic=False, dtype=image.dtype, device=image.device)
    tiles = (tiles - tiles.mean(dim=(-2, -1), keepdim=True)) * (hann[:, None] * hann[None, :])
    spectrum = torch.fft.rfft2(tiles)
    return torch.log1p(torch.sqrt(spectrum.real**2 + spectrum.imag**2 + eps))


def spectrum_loss(comp: Tensor, image: Tensor, mask: Tensor, tile: int = SPECTRUM_TILE) -> Tensor:
    """Amplitude-spectrum distance of a composite ``comp`` to the original ``image`` (both (B,3,H,W), [0,1]) over
    the hole ``mask`` (B,1,H,W): the mean |local_spectrum(comp) - local_spectrum(image)| of each tile, weighted
    by the tile's hole share. Phase-free (a shifted copy of a stationary texture scores low) but not blind to
    a periodic pattern: its peaks are frequencies the photo lacks. 0 for the original."""
    weight = F.avg_pool2d(mask, tile).flatten(1)  # (B, N), the same row-major order as unfold
    gap = (local_spectrum(comp, tile) - local_spectrum(image, tile)).abs().mean(dim=(-2, -1))
    return (weight * gap).sum() / weight.sum().clamp_min(1e-8)


def lattice_loss(comp: Tensor, image: Tensor, mask: Tensor, period: int = LATTICE_PERIOD, tile: int = LATTICE_TILE) -> Tensor:
    """The lattice-locked pattern a composite ``comp`` has beyond the original ``image`` (both (B,3,H,W), [0,1])
    over the hole ``mask`` (B,1,H,W): per ``tile`` x ``tile`` tile, the rms of the Laplacian's pixel-class means
    (``metrics.lattice_classes``: what repeats every 2, 4 or 8 pixels), the composite's less the original's,
    clipped at 0 and weighted by the tile's hole share. 0 for the original and for any fill without a stronger
    locked pattern than the photo's; a decoder's dot lattice costs its amplitude."""

    def amplitude(x: Tensor) -> Tensor:  # (B,rows,cols)
        return ((lattice_classes(x, period, tile)[1] ** 2).mean(dim=(2, 3, 5, 6)) + 1e-12).sqrt()

    excess = F.relu(amplitude(comp) - amplitude(image))
    rows, cols = excess.shape[1:]
    weight = F.avg_pool2d(mask[..., : rows * tile, : cols * tile].double(), tile)[:, 0]
    return ((weight * excess).sum() / weight.sum().clamp_min(1e-8)).to(comp.dtype)


#: The network-free texture terms on the final composite: ``LossConfig`` weight name -> fn(comp, image, mask).
COMPOSITE_TERMS = {"detail_energy": detail_energy_loss, "spectrum": spectrum_loss, "lattice": lattice_loss}


def perceptual_loss(feats_a: list[Tensor], feats_b: list[Tensor]) -> Tensor:
    """``sum_l mean|a_l - b_l|`` over lists of feature maps."""
    return sum((a.float() - b.float()).abs().mean() for a, b in zip(feats_a, feats_b))


def style_loss(feats_a: list[Tensor], feats_b: list[Tensor]) -> Tensor:
    """``sum_l mean|G(a_l) - G(b_l)|`` with ``gram_matrix`` (normalised by C*H*W)."""
    return sum((gram_matrix(a) - gram_matrix(b)).abs().mean() for a, b in zip(feats_a, feats_b))


def generator_adversarial(gan_mode: str, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """The generator's adversarial loss from D's logits on the fake (and, for relativistic, real) images.

    lsgan: mean((D(f)-1)^2) (LGNet Eq. 4); hinge: -mean(D(f)); nsgan: mean(softplus(-D(f)));
    relativistic (average, RaGAN): mean(softplus(-(D(f)-mean D(r)))) + mean(softplus(D(r)-mean D(f))).
    """
    if gan_mode == "lsgan":
        return ((fake_logits - 1) ** 2).mean()
    if gan_mode == "hinge":
        return -fake_logits.mean()
    if gan_mode == "nsgan":
        return F.softplus(-fake_logits).mean()
    if gan_mode == "relativistic":
        if real_logits is None:
            raise ValueError("relativistic GAN loss needs the logits of the real images")
        return F.softplus(-(fake_logits - real_logits.mean())).mean() + F.softplus(real_logits - fake_logits.mean()).mean()
    raise InpaintlabError(f"unknown loss.gan_mode {gan_mode!r}; expected lsgan, hinge, nsgan or relativistic")


def discriminator_adversarial(gan_mode: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss. lsgan: 0.5*(mean((D(r)-1)^2) + mean(D(f)^2)) (LGNet Eq. 5);
    hinge: mean(relu(1-D(r))) + mean(relu(1+D(f))); nsgan: mean(softplus(-D(r))) + mean(softplus(D(f)));
    relativistic: mean(softplus(-(D(r)-mean D(f)))) + mean(softplus(D(f)-mean D(r))).
    """
    if gan_mode == "lsgan":
        return 0.5 * (((real_logits - 1) ** 2).mean() + (fake_logits**2).mean())
    if gan_mode == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if gan_mode == "nsgan":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if gan_mode == "relativistic":
        return F.softplus(-(real_logits - fake_logits.mean())).mean() + F.softplus(fake_logits - real_logits.mean()).mean()
    raise InpaintlabError(f"unknown loss.gan_mode {gan_mode!r}; expected lsgan, hinge, nsgan or relativistic")


def adversarial_images(adv_input: str, out: InpaintOutput, image: Tensor, mask: Tensor) -> list[Tensor]:
    """The (B,3,H,W) image(s) the discriminator judges as fake, per ``LossConfig.adv_input``.

    "first_composite" / "final_composite": composite of ``outputs[0]`` / ``pred``; "final_raw": ``pred``
    itself (MSA-Net); "first_raw": ``outputs[0]`` itself (a raw-judging backbone as the first stage of an
    ``<backbone>_lg`` model); "every_composite": the composite of every output (CSTFNet: coarse and refined).
    """
    if adv_input == "first_composite":
        return [composite(out.outputs[0], image, mask)]
    if adv_input == "first_raw":
        return [out.outputs[0]]
    if adv_input == "final_composite":
        return [composite(out.pred, image, mask)]
    if adv_input == "final_raw":
        return [out.pred]
    if adv_input == "every_composite":
        return [composite(o, image, mask) for o in out.outputs]
    raise InpaintlabError(
        f"unknown loss.adv_input {adv_input!r}; expected first_composite, final_composite, first_raw, final_raw or "
        "every_composite"
    )


def discriminator_logits(discriminator: nn.Module, image: Tensor, mask: Tensor) -> list[Tensor]:
    """D's logits maps for (B,3,H,W) ``image`` as a list: ``D(image, mask)`` if D's forward takes a mask.

    ``discriminator`` may be DDP-wrapped; the wrapped module's declared ``takes_mask`` decides.
    """
    takes_mask = discriminator_contract(discriminator).takes_mask
    logits = discriminator(image, mask) if takes_mask else discriminator(image)
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def scale_for_vgg(x: Tensor, mode: str) -> Tensor:
    """Map [0,1] images to VGG16's input convention: "minus1_1" (official LGNet), "imagenet" or "unit"."""
    if mode == "minus1_1":
        return x * 2 - 1
    if mode == "imagenet":
        mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std
    if mode == "unit":
        return x
    raise InpaintlabError(f"unknown loss.vgg_input {mode!r}; expected minus1_1, imagenet or unit")


def _pixel_range(name: str):
    """[0,1] -> the range pixel and TV terms are computed in (``LossConfig.pixel_range``)."""
    if name == "unit":
        return lambda x: x
    if name == "minus1_1":
        return lambda x: x * 2 - 1
    raise InpaintlabError(f"unknown loss.pixel_range {name!r}; expected unit or minus1_1")


# ------------------------------------------------------------------------------------------- modules


def aux_kind(name: str, value, declared: Mapping[str, str] | None) -> str:
    """The kind of aux entry ``name``: the declared one (checked against the value), else inferred."""
    is_tuple = isinstance(value, (tuple, list))
    if declared is None:
        return PYRAMID if is_tuple else SCALAR
    if name not in declared:
        raise InpaintlabError(
            f"the model returns aux term {name!r} it does not declare (aux_terms: {', '.join(sorted(declared)) or 'none'})"
        )
    kind = declared[name]
    if is_tuple != (kind == PYRAMID):
        raise InpaintlabError(f"aux term {name!r} is declared {kind!r} but the model returned a {type(value).__name__}")
    return kind


def check_aux_weights(model: InpaintModel, cfg: LossConfig) -> None:
    """Loss weights and the model's declared ``aux_terms`` must match in both directions.

    Raises ``InpaintlabError`` naming the model and the term: a weight for a term the model never returns
    (a typo, or a preset for another model), or a declared term without a weight (``--set loss.aux.NAME=W``).
    """
    name, declared = model.model_name, dict(model.aux_terms)
    bad_kinds = sorted(k for k, kind in declared.items() if kind not in AUX_KINDS)
    if bad_kinds:
        raise InpaintlabError(
            f"model {name!r} declares aux term {bad_kinds[0]!r} of unknown kind "
            f"{declared[bad_kinds[0]]!r}; kinds: {', '.join(AUX_KINDS)}"
        )
    unused = sorted(set(cfg.aux) - set(declared))
    if unused:
        raise InpaintlabError(
            f"loss.aux weights {unused[0]!r} but model {name!r} returns no such aux term (it declares: "
            f"{', '.join(sorted(declared)) or 'none'}); remove it or fix the name"
        )
    missing = sorted(set(declared) - set(cfg.aux))
    if missing:
        raise InpaintlabError(
            f"model {name!r} returns aux term {missing[0]!r} ({declared[missing[0]]}) but loss.aux "
            f"has no weight for it: --set loss.aux.{missing[0]}=W"
        )


class GeneratorLoss(nn.Module):
    """Total generator objective ``(total, logs)`` from ``(out, image, mask)``.

    discriminator: the *plain* (not DDP-wrapped) module, needed when ``cfg.adversarial > 0``; its
    parameters receive no gradient from this loss only if the caller freezes them (the trainer does).
    features: a VGG16 feature net returning a list of maps; built from ``cfg.vgg_weights`` when omitted
    and perceptual/style weights are non-zero.
    logs: detached scalar tensors named ``g/<term>``, ``g/aux/<name>`` and ``g/total``.
    """

    def __init__(
        self,
        cfg: LossConfig,
        discriminator: nn.Module | None = None,
        features: nn.Module | None = None,
        aux_terms: Mapping[str, str] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        # aux_terms: the generator's declared ``{name: kind}`` (the trainer passes it); None infers each kind
        # from the value (a tuple is a pyramid), for a loss used on its own.
        self.aux_terms = None if aux_terms is None else dict(aux_terms)
        if self._discriminator_weights() and discriminator is None:
            raise InpaintlabError(
                "loss.adversarial, loss.feature_matching and loss.feature_style > 0 need a discriminator: set "
                "model.discriminator=NAME or the weight to 0"
            )
        self.discriminator = discriminator
        if features is None and (cfg.perceptual > 0 or cfg.style > 0):
            from .features import VGG16Features

            features = VGG16Features(layers=cfg.vgg_layers, weights=cfg.vgg_weights)
        self.features = features

    def forward(self, out: InpaintOutput, image: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, outputs = self.cfg, out.outputs
        terms: dict[str, Tensor] = {}
        to_range = _pixel_range(cfg.pixel_range)
        target = to_range(image)
        pixel = lambda o, region: pixel_loss(to_range(o), target, region, cfg.pixel_distance, cfg.pixel_norm)  # noqa: E731
        terms["valid"] = sum(pixel(o, 1 - mask) for o in outputs)
        terms["hole"] = sum(pixel(o, mask) for o in outputs)
        total = cfg.valid * terms["valid"] + cfg.hole * terms["hole"]

        if cfg.perceptual > 0 or cfg.style > 0 or cfg.tv > 0:
            total = total + self._feature_terms(outputs, image, mask, terms)
        on_composite = {name: fn for name, fn in COMPOSITE_TERMS.items() if getattr(cfg, name) > 0}
        if on_composite:
            comp = composite(out.pred, image, mask)
            for name, fn in on_composite.items():
                terms[name] = fn(comp, image, mask)
                total = total + getattr(cfg, name) * terms[name]
        weights = self._discriminator_weights()
        if weights:
            for name, value in self._discriminator_terms(out, image, mask).items():
                terms[name] = value
                total = total + weights[name] * value
        for name, value in out.aux.items():
            if name not in cfg.aux:
                raise InpaintlabError(
                    f"model returns aux term {name!r} but loss.aux has no weight for it: --set loss.aux.{name}=W"
                )
            kind = aux_kind(name, value, self.aux_terms)
            if kind == PYRAMID:  # coarser-scale images, e.g. SRPNet's pyramid outputs
                value = pyramid_l1(tuple(to_range(v) for v in value), target, cfg.pyramid_downsample)
            if value.numel() != 1:
                raise ValueError(f"aux term {name!r} must be a scalar loss, got shape {tuple(value.shape)}")
            terms[f"aux/{name}"] = value.reshape(())
            total = total + float(cfg.aux[name]) * terms[f"aux/{name}"]

        logs = {f"g/{k}": v.detach() for k, v in terms.items()}
        logs["g/total"] = total.detach()
        return total, logs

    def _discriminator_weights(self) -> dict[str, float]:
        """The weights of the discriminator's terms that are on: a subset of {"adv", "fm", "fstyle"}."""
        cfg = self.cfg
        weights = {"adv": cfg.adversarial, "fm": cfg.feature_matching, "fstyle": cfg.feature_style}
        return {name: weight for name, weight in weights.items() if weight > 0}

    def _discriminator_terms(self, out: InpaintOutput, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The discriminator's terms that have a weight, each summed over the judged images (``adv_input``):
        "adv" (the generator's GAN term, mean over D's heads), "fm" (pix2pixHD's feature matching: mean over D's
        layers l of mean |D_l(fake) - D_l(real)|) and "fstyle" (the same on Gram matrices, ``gram_matrix``).
        One D pass per judged image serves all three (``InpaintDiscriminator.judge`` where adversarial and
        feature terms are both on); the original's features take one more pass, without grad."""
        cfg = self.cfg
        contract = discriminator_contract(self.discriminator)
        terms = {name: image.new_zeros(()) for name in self._discriminator_weights()}
        want_adv, want_features = "adv" in terms, "fm" in terms or "fstyle" in terms
        real_logits, real = None, []
        if want_adv and cfg.gan_mode == "relativistic":
            real_logits = discriminator_logits(self.discriminator, image, mask)
        if want_features:
            with torch.no_grad():
                real = [f.detach() for f in contract.features(image, mask)]
        for fake in adversarial_images(cfg.adv_input, out, image, mask):
            if want_adv and want_features:
                fake_logits, layers = contract.judge(fake, mask)
            elif want_adv:
                fake_logits = discriminator_logits(self.discriminator, fake, mask)
            else:
                layers = contract.features(fake, mask)
            if want_adv:
                reals = real_logits if real_logits is not None else [None] * len(fake_logits)
                per_head = [generator_adversarial(cfg.gan_mode, f, r) for f, r in zip(fake_logits, reals)]
                terms["adv"] = terms["adv"] + sum(per_head) / len(per_head)
            if "fm" in terms:
                terms["fm"] = terms["fm"] + sum((f - r).abs().mean() for f, r in zip(layers, real)) / len(layers)
            if "fstyle" in terms:
                terms["fstyle"] = terms["fstyle"] + style_loss(layers, real) / len(layers)
        return terms

    def _feature_terms(self, outputs: tuple[Tensor, ...], image: Tensor, mask: Tensor, terms: dict) -> Tensor:
        """Perceptual and style on each selected output (raw, and composited unless ``feature_images="raw"``),
        TV on its composite (LGNet Eqs. 6-8)."""
        cfg = self.cfg
        try:
            selected = [outputs[i] for i in cfg.feature_outputs]
        except IndexError:
            raise InpaintlabError(
                f"loss.feature_outputs={list(cfg.feature_outputs)} but the model returns {len(outputs)} outputs"
            ) from None
        use_vgg = cfg.perceptual > 0 or cfg.style > 0
        if use_vgg:
            with torch.no_grad():
                target_feats = [f.detach() for f in self.features(scale_for_vgg(image, cfg.vgg_input))]
        comps = [composite(raw, image, mask) for raw in selected]
        terms["perceptual"] = terms["style"] = image.new_zeros(())
        if use_vgg:  # every raw output (and composite) through VGG16 in one batch
            both = cfg.feature_images == "raw_and_composite"
            candidates = [c for raw, comp in zip(selected, comps) for c in ((raw, comp) if both else (raw,))]
            feats = self.features(scale_for_vgg(torch.cat(candidates), cfg.vgg_input))
            for per_candidate in zip(*(f.chunk(len(candidates)) for f in feats)):
                terms["perceptual"] = terms["perceptual"] + perceptual_loss(per_candidate, target_feats)
                terms["style"] = terms["style"] + style_loss(per_candidate, target_feats)
        to_range = _pixel_range(cfg.pixel_range)
        tv_inputs = [to_range(comp) * mask if cfg.tv_region == "hole" else to_range(comp) for comp in comps]
        terms["tv"] = sum((total_variation(x) for x in tv_inputs), image.new_zeros(()))
        return cfg.perceptual * terms["perceptual"] + cfg.style * terms["style"] + cfg.tv * terms["tv"]


class DiscriminatorLoss(nn.Module):
    """Discriminator objective ``(loss, logs)`` from ``(discriminator, out, image, mask)``.

    The fake image(s) (``adv_input``) are detached, so no gradient reaches the generator. Real and fake are
    judged in separate calls (as the official code does, so batch-statistics layers see pure batches).
    Several fakes (``every_composite``) average their losses; several logits maps (heads) average too.
    """

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.cfg = cfg

    def forward(
        self, discriminator: nn.Module, out: InpaintOutput, image: Tensor, mask: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        fakes = [f.detach() for f in adversarial_images(self.cfg.adv_input, out, image, mask)]
        fake_logits = [discriminator_logits(discriminator, fake, mask) for fake in fakes]
        real_logits = discriminator_logits(discriminator, image, mask)
        per_fake = [
            sum(discriminator_adversarial(self.cfg.gan_mode, r, f) for r, f in zip(real_logits, heads)) / len(heads)
            for heads in fake_logits
        ]
        loss = sum(per_fake) / len(per_fake)
        mean_logit = lambda maps: sum(m.detach().mean() for m in maps) / len(maps)  # noqa: E731
        fake_mean = sum(mean_logit(heads) for heads in fake_logits) / len(fake_logits)
        logs = {"d/loss": loss.detach(), "d/real": mean_logit(real_logits), "d/fake": fake_mean}
        return loss, logs


__all__ = [
    "DiscriminatorLoss",
    "GeneratorLoss",
    "adversarial_images",
    "aux_kind",
    "check_aux_weights",
    "discriminator_adversarial",
    "discriminator_logits",
    "generator_adversarial",
    "gram_matrix",
    "masked_l1",
    "perceptual_loss",
    "pixel_loss",
    "pyramid_l1",
    "scale_for_vgg",
    "style_loss",
    "total_variation",
]

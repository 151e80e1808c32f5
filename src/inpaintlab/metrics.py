"""Image-quality metrics on composites, per image, and ``MetricTracker`` binned by hole ratio.

Functional API (kornia style): every per-image metric takes ``pred, target`` of shape (B,3,H,W) in [0,1]
and returns (B,) float64; ``METRICS`` maps names to them. Project metrics: ``l1`` (mean absolute error in
%), ``mse``, ``psnr``, ``ssim`` (Gaussian 11x11, sigma 1.5, per channel, equal to skimage's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``),
``ms_ssim`` and ``lpips``. FID: :func:`frechet_distance`, :func:`fid_from_features`.

Masked, no-reference: ``detail`` (:func:`detail_ratio` of the composite) and ``detail_gt`` (the same of the
original, over the same hole: what a perfect fill scores, ~1). A proxy for "is there texture in the fill",
not a realism metric: noise scores high too, so read it beside PSNR/SSIM. ``grid`` / ``grid_gt``
(:func:`grid_share`): how much of that detail is a 2-pixel pattern locked to the pixel lattice, the
checkerboard of stride-2 transposed convolutions, which the detail ratio counts as detail. ``lattice`` /
``lattice_gt`` (:func:`lattice_share`): the same for any pattern locked to the 8-pixel lattice (periods 2, 4
and 8: the dots that the deeper stride-2 layers draw when texture terms pull them).

Paper conventions, named as such so published tables compare like for like:
``psnr_uint8_trunc`` (LGNet ``test_and_save.py``), ``ssim_win51_uint8`` (PEN-Net / SRPNet ``eval.py``),
``ssim_gray_win51`` and ``psnr_gray`` (MSA-Net ``quality_test.py``), ``l1_relative`` (PEN-Net and MSA-Net
"L1/MAE": sum|a-b| / sum(a+b)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InpaintlabError
from .features import ALEXNET_FILE, INCEPTION_FID_FILE, LPIPS, LPIPS_ALEX_FILE, InceptionV3Pool3
from .masks import HOLE_RATIO_BINS, bin_label, ratio_bin
from .types import check_image_mask

#: Wang et al. (2003) MS-SSIM exponents, finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: skimage ``rgb2gray`` (ITU-R BT.709 luma) coefficients, applied to channels in array order.
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def check_pair(pred: Tensor, target: Tensor) -> None:
    """Raise ``InpaintlabError`` unless pred and target are floating (B,3,H,W) tensors of one shape."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise InpaintlabError(f"{name} must be a torch tensor of shape (B,3,H,W) in [0,1], got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise InpaintlabError(f"{name} must have shape (B,3,H,W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InpaintlabError(f"{name} must be a floating point tensor in [0,1], got {x.dtype}")
    if pred.shape != target.shape:
        raise InpaintlabError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")


# ------------------------------------------------------------------------------------ project metrics


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error in percent (x100): (B,3,H,W) x2 -> (B,)."""
    check_pair(pred, target)
    return (pred.double() - target.double()).abs().mean(dim=(1, 2, 3)) * 100


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error: (B,3,H,W) x2 -> (B,)."""
    check_pair(pred, target)
    return (pred.double() - target.double()).pow(2).mean(dim=(1, 2, 3))


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB, ``10 log10(data_range^2 / mse)``, +inf for identical images: (B,3,H,W) x2 -> (B,)."""
    return 10 * torch.log10(data_range**2 / mse(pred, target))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """(size,) float64 normalised Gaussian taps, as scipy's ``gaussian_filter`` with radius (size-1)/2."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _filter_valid(x: Tensor, taps: Tensor) -> Tensor:
    """Separable 'valid' filtering of each channel: (B,C,H,W) -> (B,C,H-k+1,W-k+1). Written as weighted sums of
    shifted views: float64 ``conv2d`` has no fast CPU kernel (SSIM 3.5x faster at 8x256x256, the same sums)."""
    k = taps.numel()
    h, w = x.shape[-2:]
    weights = taps.tolist()
    rows = x[..., :, : w - k + 1] * weights[0]
    for i, weight in enumerate(weights[1:], start=1):
        rows.add_(x[..., :, i : i + w - k + 1], alpha=weight)
    out = rows[..., : h - k + 1, :] * weights[0]
    for i, weight in enumerate(weights[1:], start=1):
        out.add_(rows[..., i : i + h - k + 1, :], alpha=weight)
    return out


def ssim_maps(
    pred: Tensor,
    target: Tensor,
    taps: Tensor,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
) -> tuple[Tensor, Tensor]:
    """SSIM and contrast-structure maps over the 'valid' region (the border skimage crops).

    pred, target: (B,C,H,W); taps: 1-D window (Gaussian or uniform); sample_covariance scales the
    (co)variances by N/(N-1) with N = window pixels (skimage's ``use_sample_covariance``).
    Returns (ssim_map, cs_map), each (B,C,H-k+1,W-k+1) float64.
    """
    k = taps.numel()
    if min(pred.shape[-2:]) < k:
        raise InpaintlabError(f"SSIM with a {k}x{k} window needs H and W >= {k}, got {tuple(pred.shape[-2:])}")
    x, y = pred.double(), target.double()
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    cov_norm = k * k / (k * k - 1) if sample_covariance else 1.0
    var_x = cov_norm * (_filter_valid(x * x, taps) - mu_x * mu_x)
    var_y = cov_norm * (_filter_valid(y * y, taps) - mu_y * mu_y)
    cov_xy = cov_norm * (_filter_valid(x * y, taps) - mu_x * mu_y)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    cs_map = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return luminance * cs_map, cs_map


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM, Gaussian window, per channel then mean over channels: (B,3,H,W) x2 -> (B,).

    K1 0.01, K2 0.03, population covariance; the map is averaged over pixels at least (window_size-1)/2
    from the border, which is exactly skimage's crop of its reflect-padded map.
    """
    check_pair(pred, target)
    ssim_map, _ = ssim_maps(pred, target, gaussian_window(window_size, sigma), data_range)
    return ssim_map.mean(dim=(1, 2, 3))


def ms_ssim(
    pred: Tensor,
    target: Tensor,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003) per channel, then mean over channels: (B,3,H,W) x2 -> (B,).

    Per scale and channel: mean contrast-structure (SSIM at the coarsest scale) over the valid region,
    clamped at 0 (relu, as pytorch_msssim and torchmetrics' default), then 2x2 average pooling (odd sides
    padded by one, as pytorch_msssim). Per channel prod_s value_s ** weights[s], then the channel mean;
    this equals ``pytorch_msssim.ms_ssim(size_average=False)``. (torchmetrics averages channels before the
    product and takes the coarsest SSIM over its reflect-padded full map, so it differs slightly.)
    Small-size rule: the coarsest scale must still hold one window, which for 5 scales and an 11x11 window
    means H, W > 160 (pytorch_msssim's assertion); 256x256 runs at 256..16. Smaller images raise
    ``InpaintlabError``; pass fewer ``weights`` (scales) for them.
    """
    check_pair(pred, target)
    scales = len(weights)
    coarsest = min(pred.shape[-2:])
    for _ in range(scales - 1):
        coarsest = (coarsest + 1) // 2
    if coarsest < window_size:
        raise InpaintlabError(
            f"ms_ssim with {scales} scales and a {window_size}x{window_size} window needs H and W > "
            f"{(window_size - 1) * 2 ** (scales - 1)}, got {tuple(pred.shape[-2:])}; "
            "pass fewer weights= for small images"
        )
    taps = gaussian_window(window_size, sigma)
    x, y = pred.double(), target.double()
    values = []
    for scale in range(scales):
        ssim_map, cs_map = ssim_maps(x, y, taps, data_range)
        chosen = ssim_map if scale == scales - 1 else cs_map
        values.append(chosen.mean(dim=(2, 3)).clamp(min=0))
        padding = [side % 2 for side in x.shape[2:]]
        x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    exponents = torch.tensor(list(weights), dtype=torch.float64, device=x.device).view(-1, 1, 1)
    return torch.prod(torch.stack(values) ** exponents, dim=0).mean(dim=1)


@lru_cache(maxsize=4)
def _default_lpips(device: str) -> LPIPS:
    """Pretrained LPIPS on ``device``, built once (raises ``WeightsNotFoundError`` without the files)."""
    return LPIPS().to(device)


def lpips(pred: Tensor, target: Tensor, net: LPIPS | None = None) -> Tensor:
    """LPIPS v0.1 (AlexNet) distance: (B,3,H,W) x2 in [0,1] -> (B,); ``net`` defaults to pretrained LPIPS."""
    check_pair(pred, target)
    net = net if net is not None else _default_lpips(str(pred.device))
    with torch.no_grad():
        return net.to(pred.device)(pred.float(), target.float()).double()


# ------------------------------------------------------------------------------------------- FID


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2) (arrays or tensors).

    ``|mu1-mu2|^2 + tr(s1) + tr(s2) - 2 tr((s1 s2)^1/2)``, with ``tr((s1 s2)^1/2)`` computed scipy-free as
    sum(sqrt(eig(s1^1/2 s2 s1^1/2))) by symmetric eigen decompositions in float64 (same eigenvalues as
    s1 s2; negative round-off eigenvalues clamp to 0), so singular covariances need no eps offset.
    """
    mu1, mu2 = (np.asarray(torch.as_tensor(m).cpu(), dtype=np.float64).ravel() for m in (mu1, mu2))
    s1, s2 = (np.asarray(torch.as_tensor(s).cpu(), dtype=np.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != (mu1.size, mu1.size) or s2.shape != s1.shape:
        raise InpaintlabError(
            f"frechet_distance needs means (D,) and covariances (D,D) of one D, got "
            f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}"
        )
    eigvals, eigvecs = np.linalg.eigh((s1 + s1.T) / 2)
    s1_half = (eigvecs * np.sqrt(eigvals.clip(min=0))) @ eigvecs.T
    middle = s1_half @ s2 @ s1_half
    trace_sqrt = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def fid_from_features(real, fake) -> float:
    """FID between two feature sets (N,D) and (M,D), N, M >= 2 (mean + sample covariance of each).

    When min(N, M) < D the covariances are rank-deficient and the D x D eigen decompositions are wasted
    work (seconds at D = 2048): with centred features A (N,D), B (M,D), ``tr((S1 S2)^1/2)`` equals the sum
    of singular values of ``A B^T`` over sqrt((N-1)(M-1)), which is what is used then. Otherwise
    :func:`frechet_distance` on the covariances.
    """
    real = np.asarray(torch.as_tensor(real).cpu(), dtype=np.float64)
    fake = np.asarray(torch.as_tensor(fake).cpu(), dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise InpaintlabError(f"FID needs two (N,D) feature sets of one D, got {real.shape} and {fake.shape}")
    n, m, dim = len(real), len(fake), real.shape[1]
    if n < 2 or m < 2:
        raise InpaintlabError(f"FID needs at least 2 images per set, got {n} and {m}")
    if min(n, m) >= dim:
        return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    a, b = real - real.mean(0), fake - fake.mean(0)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / math.sqrt((n - 1) * (m - 1))
    mean_term = ((real.mean(0) - fake.mean(0)) ** 2).sum()
    return float(mean_term + (a * a).sum() / (n - 1) + (b * b).sum() / (m - 1) - 2 * trace_sqrt)


# ---------------------------------------------------------------------------------- paper conventions


def to_uint8_levels(x: Tensor, rounding: str = "trunc") -> Tensor:
    """[0,1] -> integer levels 0..255 as float64: ``"trunc"`` = ``(x*255).int()`` (LGNet/PEN-Net
    postprocess; computed in float32 like them), ``"round"`` = nearest (PIL/torchvision-style saving).
    Values are clamped to [0,1] first (the official code would wrap 256 to 0 in ``astype(uint8)``)."""
    scaled = x.float().clamp(0, 1) * 255
    if rounding == "trunc":
        return scaled.floor().double()
    if rounding == "round":
        return scaled.round().double()
    raise InpaintlabError(f"rounding must be 'trunc' or 'round', got {rounding!r}")


def psnr_uint8_trunc(pred: Tensor, target: Tensor) -> Tensor:
    """LGNet's PSNR: ``(x*255).int()`` truncation, MAX 255, full image, 100 when identical: (B,) x2 -> (B,)."""
    check_pair(pred, target)
    err = (to_uint8_levels(pred) - to_uint8_levels(target)).pow(2).mean(dim=(1, 2, 3))
    value = 20 * torch.log10(255.0 / err.sqrt())
    return torch.where(err == 0, torch.full_like(value, 100.0), value)


def ssim_win51_uint8(pred: Tensor, target: Tensor) -> Tensor:
    """PEN-Net/SRPNet SSIM: skimage ``structural_similarity(win_size=51, channel_axis=-1)`` on truncated uint8
    colour (uniform window, sample covariance, data range 255), mean over channels: (B,3,H,W) x2 -> (B,)."""
    check_pair(pred, target)
    taps = torch.full((51,), 1 / 51, dtype=torch.float64)
    ssim_map, _ = ssim_maps(to_uint8_levels(pred), to_uint8_levels(target), taps, 255.0, sample_covariance=True)
    return ssim_map.mean(dim=(1, 2, 3))


def to_gray(x: Tensor, channel_order: str = "bgr", rounding: str = "round") -> Tensor:
    """MSA-Net ``quality_test.py`` grayscale: uint8 file levels -> /255 -> skimage ``rgb2gray``.

    x: (B,3,H,W) RGB in [0,1] -> (B,1,H,W) float64. The official script reads PNGs with cv2 (BGR order) and
    passes them to ``rgb2gray`` unchanged, so with ``channel_order="bgr"`` (default, like the published
    numbers) the 0.2125 weight falls on blue; ``"rgb"`` gives the textbook luma. ``rounding`` is how the
    evaluated PNGs were written (see ``to_uint8_levels``).
    """
    if channel_order not in ("bgr", "rgb"):
        raise InpaintlabError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    levels = to_uint8_levels(x, rounding) / 255
    if channel_order == "bgr":
        levels = levels.flip(1)
    weights = torch.tensor(GRAY_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (levels * weights).sum(dim=1, keepdim=True)


def ssim_gray_win51(pred: Tensor, target: Tensor, channel_order: str = "bgr", rounding: str = "round") -> Tensor:
    """MSA-Net SSIM: ``structural_similarity(win_size=51, data_range=1)`` on ``to_gray`` images: -> (B,)."""
    check_pair(pred, target)
    taps = torch.full((51,), 1 / 51, dtype=torch.float64)
    gray_pred, gray_target = to_gray(pred, channel_order, rounding), to_gray(target, channel_order, rounding)
    ssim_map, _ = ssim_maps(gray_pred, gray_target, taps, 1.0, sample_covariance=True)
    return ssim_map.mean(dim=(1, 2, 3))


def psnr_gray(pred: Tensor, target: Tensor, channel_order: str = "bgr", rounding: str = "round") -> Tensor:
    """MSA-Net PSNR: ``peak_signal_noise_ratio(data_range=1)`` on ``to_gray`` images (+inf if equal): -> (B,)."""
    check_pair(pred, target)
    gray_pred, gray_target = to_gray(pred, channel_order, rounding), to_gray(target, channel_order, rounding)
    return 10 * torch.log10(1.0 / (gray_pred - gray_target).pow(2).mean(dim=(1, 2, 3)))


def l1_relative(pred: Tensor, target: Tensor) -> Tensor:
    """PEN-Net/MSA-Net "L1": ``sum|a-b| / sum(a+b)`` per image, a fraction (x100 for %): (B,3,H,W) x2 -> (B,).

    Computed on the given colour images; PEN-Net used truncated uint8 colour and MSA-Net grayscale, which
    change the value only through quantisation and channel weighting.
    """
    check_pair(pred, target)
    a, b = pred.double(), target.double()
    return (a - b).abs().sum(dim=(1, 2, 3)) / (a + b).sum(dim=(1, 2, 3))


DETAIL_RING, DETAIL_GAP = 16, 2  # pixels: the known ring around the hole that sets the reference detail


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Square (Chebyshev) dilation of (B,1,H,W) {0,1} by ``radius`` px, separably: each pass counts the hole
    pixels in a sliding window from cumulative sums (O(1) per pixel whatever the radius; counts are exact)."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    out = (mask > 0.5).float()
    for pad, dim in (((radius + 1, radius, 0, 0), -1), ((0, 0, radius + 1, radius), -2)):
        sums = F.pad(out, pad).cumsum(dim)  # a leading zero, so window i is sums[i + k] - sums[i]
        size = out.shape[dim]
        out = ((sums.narrow(dim, k, size) - sums.narrow(dim, 0, size)) > 0.5).float()
    return out.to(mask.dtype)


def _hole_interior(hole: Tensor) -> Tensor:
    """The hole pixels whose 3x3 neighbourhood is all hole: (B,1,H,W) {0,1} -> the same (seams excluded)."""
    return 1 - _dilate(1 - hole, 1)


def _whole_tiles(mask: Tensor, tile: int, dtype: torch.dtype) -> Tensor:
    """(B,1,H,W) 1 = hole -> (B,1,H//tile,W//tile) of {0,1}: the tiles (on multiples of ``tile``) wholly inside the
    hole's interior (``_hole_interior``)."""
    interior = _hole_interior((mask > 0.5).to(dtype))
    return (F.avg_pool2d(interior, tile) > 1 - 1e-9).to(dtype)


def _laplacian(image: Tensor) -> Tensor:
    """Signed 4-neighbour Laplacian (replicate border) of the grey image: (B,3,H,W) -> (B,1,H,W) float64."""
    grey = image.double().mean(dim=1, keepdim=True)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")  # shifted views: float64 conv2d is slow on CPU
    return padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:] - 4 * grey


def detail_ratio(image: Tensor, mask: Tensor, ring: int = DETAIL_RING, gap: int = DETAIL_GAP) -> Tensor:
    """Detail inside the hole relative to its surroundings: (B,3,H,W) [0,1], (B,1,H,W) 1 = hole -> (B,).

    Mean |Laplacian| (4-neighbour, replicate border) of the grey image (channel mean) over the hole pixels
    whose 3x3 neighbourhood is all hole (so the seam with the known pixels does not count as detail),
    divided by the same over the known ring from ``gap`` to ``gap + ring`` pixels (Chebyshev) outside the
    hole. Ground truth scores ~1, a flat or blurred fill ~0; NaN for an image without such hole or ring
    pixels (holes at most 2 px wide have no interior).

    >>> flat = torch.full((1, 3, 64, 64), 0.5)
    >>> noisy = flat + 0.1 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    >>> hole = torch.zeros(1, 1, 64, 64); hole[..., 24:40, 24:40] = 1
    >>> round(float(detail_ratio(noisy * (1 - hole) + flat * hole, hole)), 3)
    0.0
    """
    check_image_mask(image, mask)
    lap = _laplacian(image).abs()
    hole = (mask > 0.5).to(lap.dtype)
    interior = _hole_interior(hole)
    band = _dilate(hole, gap + ring) - _dilate(hole, gap)
    inside = (lap * interior).sum(dim=(1, 2, 3)) / interior.sum(dim=(1, 2, 3))
    around = (lap * band).sum(dim=(1, 2, 3)) / band.sum(dim=(1, 2, 3))
    return inside / around


GRID_TILE = 16  # pixels: the square tiles of the hole in which the 2-pixel pattern is measured


def grid_share(image: Tensor, mask: Tensor, tile: int = GRID_TILE) -> Tensor:
    """Share of the hole's detail that is a 2-pixel grid: (B,3,H,W) [0,1], (B,1,H,W) 1 = hole -> (B,).

    The Laplacian L of the grey image is cut into ``tile`` x ``tile`` tiles (on the lattice of multiples of
    ``tile``) lying wholly in the hole's interior. In each, the grid's amplitude is the norm of L's three
    2-pixel (Nyquist) components, the tile means of L(-1)^x, L(-1)^y and L(-1)^(x+y), and the detail is the
    mean |L|; the share is the sum of amplitudes over the sum of details. A pattern repeating every 2 pixels
    scores ~1, white noise ~0.1 (its Nyquist means average out), a photo less; NaN without a whole tile.

    >>> y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    >>> hole = torch.zeros(1, 1, 64, 64); hole[..., 8:56, 8:56] = 1
    >>> grid = (0.5 + 0.1 * ((x + y) % 2)).expand(1, 3, 64, 64)
    >>> noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    >>> round(float(grid_share(grid, hole)), 2), bool(grid_share(noise, hole) < 0.2)
    (1.0, True)
    """
    check_image_mask(image, mask)
    lap = _laplacian(image)
    height, width = lap.shape[-2:]
    y, x = torch.meshgrid(torch.arange(height, device=lap.device) % 2, torch.arange(width, device=lap.device) % 2, indexing="ij")
    signs = torch.stack([1 - 2 * x, 1 - 2 * y, 1 - 2 * ((x + y) % 2)])[None].to(lap.dtype)  # (1,3,H,W) of +-1
    whole = _whole_tiles(mask, tile, lap.dtype)
    nyquist = F.avg_pool2d(lap * signs, tile).norm(dim=1, keepdim=True)
    detail = F.avg_pool2d(lap.abs(), tile)
    return (nyquist * whole).sum(dim=(1, 2, 3)) / (detail * whole).sum(dim=(1, 2, 3))


LATTICE_PERIOD = 8  # pixels: the longest stride of the patterns counted (it holds periods 2 and 4 too)
LATTICE_TILE = 32  # pixels: the square tiles of the hole in which the locked pattern is estimated


def lattice_share(image: Tensor, mask: Tensor, period: int = LATTICE_PERIOD, tile: int = LATTICE_TILE) -> Tensor:
    """Share of the hole's detail locked to the pixel lattice with ``period`` (or a divisor of it: the 2-, 4- and
    8-pixel patterns of a decoder's stride-2 layers): (B,3,H,W) [0,1], (B,1,H,W) 1 = hole -> (B,).

    ``grid_share`` sees only the 2-pixel pattern; texture terms also draw the deeper layers' 4- and 8-pixel
    dots, which it and the detail ratio count as texture. Here the Laplacian L of the grey image is cut into
    ``tile`` x ``tile`` tiles (on multiples of ``tile``, inside the hole's interior), each less its mean. In a
    tile, the locked pattern is the mean of L over each of the period x period pixel classes (x mod period,
    y mod period); its energy, less the part that n = (tile/period)^2 samples of an unlocked signal leave in a
    mean (the within-class variance / (n - 1)), is compared with the tile's energy. The share is the square
    root of the sums over tiles: ~1 for a periodic pattern, ~0 for noise or a photo without such a pattern
    (8x8 JPEG blocks score above 0); NaN without a whole tile. The estimate needs tiles: below ~10 of them
    noise can score up to ~0.15.

    >>> y, x = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    >>> hole = torch.zeros(1, 1, 256, 256); hole[..., 8:248, 8:248] = 1
    >>> dots = (0.5 + 0.2 * ((x % 8 < 2) & (y % 8 < 2))).expand(1, 3, 256, 256)
    >>> noise = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    >>> round(float(lattice_share(dots, hole)), 2), bool(lattice_share(noise, hole) < 0.1)
    (1.0, True)
    """
    check_image_mask(image, mask)
    lap, locked = lattice_classes(image, period, tile)
    n = (tile // period) ** 2
    within = ((lap - locked) ** 2).mean(dim=(2, 5), keepdim=True)  # the biased variance of each class
    locked_energy = (locked**2 - within / (n - 1)).mean(dim=(2, 3, 5, 6))  # (B,rows,cols)
    energy = (lap**2).mean(dim=(2, 3, 5, 6))
    whole = _whole_tiles(mask, tile, lap.dtype)[:, 0]  # (B,rows,cols)
    share = (locked_energy * whole).sum(dim=(1, 2)) / (energy * whole).sum(dim=(1, 2))
    return share.clamp_min(0).sqrt()


def lattice_classes(image: Tensor, period: int = LATTICE_PERIOD, tile: int = LATTICE_TILE) -> tuple[Tensor, Tensor]:
    """The grey image's Laplacian in ``tile`` x ``tile`` tiles (on multiples of ``tile``; the rest of the image is
    dropped), each less its mean, and the mean of each of its period x period pixel classes (x mod period,
    y mod period): (B,3,H,W) -> (B,rows,tile/period,period,cols,tile/period,period) and
    (B,rows,1,period,cols,1,period), float64, differentiable (``lattice_share``, ``losses.lattice_loss``)."""
    if tile % period:
        raise InpaintlabError(f"lattice: tile ({tile}) must be a multiple of period ({period})")
    lap = _laplacian(image)
    b, _, height, width = lap.shape
    rows, cols = height // tile, width // tile
    lap = lap[..., : rows * tile, : cols * tile].reshape(b, rows, tile // period, period, cols, tile // period, period)
    lap = lap - lap.mean(dim=(2, 3, 5, 6), keepdim=True)
    return lap, lap.mean(dim=(2, 5), keepdim=True)


#: Per-image metrics by name: ``fn(pred, target) -> (B,)``. ``"fid"`` is a set metric (``MetricTracker``).
METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "l1": l1,
    "mse": mse,
    "psnr": psnr,
    "ssim": ssim,
    "ms_ssim": ms_ssim,
    "lpips": lpips,
    "psnr_uint8_trunc": psnr_uint8_trunc,
    "ssim_win51_uint8": ssim_win51_uint8,
    "ssim_gray_win51": ssim_gray_win51,
    "psnr_gray": psnr_gray,
    "l1_relative": l1_relative,
}
#: Per-image metrics that need the hole: ``fn(pred, target, mask) -> (B,)``.
MASKED_METRICS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "detail": lambda pred, target, mask: detail_ratio(pred, mask),
    "detail_gt": lambda pred, target, mask: detail_ratio(target, mask),
    "grid": lambda pred, target, mask: grid_share(pred, mask),
    "grid_gt": lambda pred, target, mask: grid_share(target, mask),
    "lattice": lambda pred, target, mask: lattice_share(pred, mask),
    "lattice_gt": lambda pred, target, mask: lattice_share(target, mask),
}


# ------------------------------------------------------------------------------------------ tracker


class MetricTracker:
    """Per-image metrics of composites, averaged overall and per hole-ratio bin.

    metrics: names from ``METRICS`` and ``MASKED_METRICS`` plus ``"fid"``; bins: (lo, hi] hole-ratio intervals (an image whose
    ratio is in none of them counts in "overall" only); feature_weights: ``"pretrained"``, ``"random"``
    (results are then not real LPIPS/FID: ``settings`` says so) or a mapping from canonical file name
    (``features.ALEXNET_FILE``, ``LPIPS_ALEX_FILE``, ``INCEPTION_FID_FILE``) to a path. The feature nets are
    built here, so missing weights fail before any image is processed. fid_features: the FID embedding
    ``(B,3,H,W) [0,1] -> (B,D)``, default ``InceptionV3Pool3`` (another backbone gives another "FID").
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("l1", "mse", "psnr", "ssim"),
        bins: Sequence[tuple[float, float]] = HOLE_RATIO_BINS,
        feature_weights: str | Mapping[str, str | Path] = "pretrained",
        fid_features: torch.nn.Module | None = None,
    ) -> None:
        known = [*METRICS, *MASKED_METRICS, "fid"]
        unknown = [name for name in metrics if name not in known]
        if unknown or not metrics:
            raise InpaintlabError(f"unknown metrics {unknown or list(metrics)}; choose from {known}")
        self.metrics = tuple(metrics)
        self.bins = tuple((float(lo), float(hi)) for lo, hi in bins)
        self.feature_weights = feature_weights
        self._lpips = LPIPS(self._weights(ALEXNET_FILE), self._weights(LPIPS_ALEX_FILE)) if "lpips" in metrics else None
        self._fid_net = None
        if "fid" in metrics:
            if fid_features is None:
                fid_features = InceptionV3Pool3(self._weights(INCEPTION_FID_FILE))
            self._fid_net = fid_features
        self._records: list[dict] = []

    def _weights(self, canonical_name: str) -> str | Path:
        """Weight spec of one feature file: the mapping's entry, else the shared string (``"pretrained"``)."""
        if isinstance(self.feature_weights, Mapping):
            return self.feature_weights.get(canonical_name, "pretrained")
        return self.feature_weights

    @property
    def settings(self) -> dict:
        """What the numbers mean: metric names, bins and the feature-network weights actually used."""
        nets = {"lpips": self._lpips, "fid": self._fid_net}
        return {
            "metrics": list(self.metrics),
            "bins": [self.bin_label(k) for k in range(len(self.bins))],
            "feature_weights": {
                name: getattr(net, "weights_source", type(net).__name__) for name, net in nets.items() if net is not None
            },
        }

    def bin_of(self, ratio: float) -> int | None:
        """Index of the bin (lo, hi] holding ``ratio``, or None."""
        return ratio_bin(ratio, self.bins)

    def bin_label(self, k: int) -> str:
        """Label of bin ``k``, e.g. ``"(0.01,0.1]"`` (``masks.bin_label`` over this tracker's bins)."""
        return bin_label(k, self.bins)

    @torch.no_grad()
    def update(self, comp: Tensor, image: Tensor, mask: Tensor, names: Sequence[str] | None = None) -> None:
        """Score a batch. comp, image: (B,3,H,W) in [0,1]; mask: (B,1,H,W), 1 = hole; names: B ids (optional)."""
        check_image_mask(image, mask)
        check_pair(comp, image)
        if names is not None and len(names) != comp.shape[0]:
            raise InpaintlabError(f"names has {len(names)} entries for a batch of {comp.shape[0]} images")
        values: dict[str, list[float]] = {}
        for name in self.metrics:
            if name == "lpips":
                values[name] = lpips(comp, image, net=self._lpips).tolist()
            elif name in MASKED_METRICS:
                values[name] = MASKED_METRICS[name](comp, image, mask).tolist()
            elif name != "fid":
                values[name] = METRICS[name](comp, image).tolist()
        if self._fid_net is not None:
            net = self._fid_net.to(comp.device)
            fake, real = net(comp.float()).cpu().numpy(), net(image.float()).cpu().numpy()
        for i, ratio in enumerate(mask.double().mean(dim=(1, 2, 3)).tolist()):
            k = self.bin_of(ratio)
            record = {
                "ratio": ratio,
                "bin": k,
                "bin_label": None if k is None else self.bin_label(k),
                "values": {name: per_image[i] for name, per_image in values.items()},
            }
            if names is not None:
                record["name"] = names[i]
            if self._fid_net is not None:
                record["fid_features"] = (real[i], fake[i])
            self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def per_image(self) -> list[dict]:
        """One dict per image in update order: ratio, bin, bin_label, values (and name when given)."""
        return [{key: value for key, value in r.items() if key != "fid_features"} for r in self._records]

    def result(self) -> dict:
        """``{"overall": {name: mean, ..., "count": n}, "bins": {label: {...}}}``; empty bins are omitted.

        ``fid`` (when asked) is computed from the stored Inception features of the group's originals and
        composites; it is NaN for a group of fewer than 2 images. An image equal to its original has
        ``psnr`` = +inf (as skimage), and so has the mean over a group holding it.
        """
        result = {"overall": self._summary(self._records), "bins": {}}
        for k in range(len(self.bins)):
            members = [r for r in self._records if r["bin"] == k]
            if members:
                result["bins"][self.bin_label(k)] = self._summary(members)
        return result

    def _summary(self, records: list[dict]) -> dict:
        """Mean of every per-image metric (and FID) over ``records``, plus ``count``."""
        summary: dict[str, float] = {}
        for name in self.metrics:
            if name == "fid":
                if len(records) < 2:
                    summary[name] = math.nan
                else:
                    real = np.stack([r["fid_features"][0] for r in records])
                    fake = np.stack([r["fid_features"][1] for r in records])
                    summary[name] = fid_from_features(real, fake)
            else:
                values = np.asarray([r["values"][name] for r in records], dtype=float)
                if name in MASKED_METRICS:  # NaN for an image whose hole has no ring (detail) or no whole tile (grid)
                    values = values[~np.isnan(values)]
                summary[name] = float(values.mean()) if values.size else math.nan
        summary["count"] = len(records)
        return summary

    def gather(self) -> None:
        """Collect every rank's per-image records on all ranks (``all_gather_object``), in rank order.

        A no-op unless ``torch.distributed`` is initialised. Call once, after the last ``update``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self._records)
        self._records = [record for rank_records in gathered for record in rank_records]

"""Pretrained feature networks defined in the repo: VGG16 (losses), AlexNet + LPIPS v0.1, InceptionV3 (FID).

Every network's ``state_dict`` keys and shapes are the canonical ones, so the canonical weight files load
as they are (key mappings, where a file's names differ, are listed on each class):

=====================  ==============================================  ==============================
network                canonical file                                  produced by
=====================  ==============================================  ==============================
``VGG16Features``      ``vgg16-397923af.pth``                          torchvision ``vgg16``
``LPIPS`` trunk        ``alexnet-owt-7be5be79.pth``                    torchvision ``alexnet``
``LPIPS`` heads        ``alex.pth``                                    ``lpips`` package, v0.1
``InceptionV3Pool3``   ``pt_inception-2015-12-05-6726825d.pth``        pytorch-fid (TF-FID port)
=====================  ==============================================  ==============================

Weights are found by :func:`resolve_weights`: ``"random"`` -> random init (results must say so), an
explicit file path, else ``$TORCH_HOME/hub/checkpoints/<canonical file>`` (``TORCH_HOME`` defaults to
``~/.cache/torch``); a download happens only when ``allow_download=True`` is passed explicitly. All
networks are frozen (``requires_grad`` False) and stay in eval mode even under ``.train()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import InpaintlabError, WeightsNotFoundError

VGG16_FILE = "vgg16-397923af.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LPIPS_ALEX_FILE = "alex.pth"
INCEPTION_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"

CANONICAL_URLS: dict[str, str] = {
    VGG16_FILE: "https://download.pytorch.org/models/vgg16-397923af.pth",
    ALEXNET_FILE: "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    LPIPS_ALEX_FILE: "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
    INCEPTION_FID_FILE: (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
    ),
}

#: Values of ``weights`` that mean "the canonical pretrained file, looked up in the standard places".
PRETRAINED = ("pretrained", "imagenet", "default")


def checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaults to ``~/.cache/torch``), read at call time."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "torch")
    return Path(torch_home) / "hub" / "checkpoints"


RANDOM_HINT = (
    "or choose random weights explicitly (Python: feature_weights='random'; train: --set loss.vgg_weights=random; "
    "eval: --feature-weights random)"
)


def resolve_weights(canonical_name: str, weights: str | Path | None, *, allow_download: bool = False) -> Path | None:
    """Find the weight file for a network whose canonical file is ``canonical_name``.

    weights: ``"random"`` -> None (random init); ``None`` or one of ``PRETRAINED`` -> the canonical file in
    ``checkpoints_dir()``, downloaded there only if ``allow_download`` and its URL is known; anything else
    -> an explicit file path. Missing file -> ``WeightsNotFoundError``.
    """
    if isinstance(weights, str) and weights == "random":
        return None
    if weights is not None and not (isinstance(weights, str) and weights in PRETRAINED):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"weights file {str(path)!r} not found (expected a copy of {canonical_name}); {RANDOM_HINT}"
            )
        return path
    folder = checkpoints_dir()
    path = folder / canonical_name
    if path.is_file():
        return path
    if allow_download and canonical_name in CANONICAL_URLS:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(CANONICAL_URLS[canonical_name], str(path), progress=True)
        return path
    raise WeightsNotFoundError(
        f"pretrained weights {canonical_name} not found: put the file in {folder} (or set TORCH_HOME), {RANDOM_HINT}"
    )


def read_state_file(path: Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth`` loaded with ``weights_only=True`` (never unpickled)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InpaintlabError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def load_matching(
    module: nn.Module,
    file_state: dict[str, Tensor],
    source: Path,
    what: str,
    rename: Callable[[str], str] = lambda key: key,
) -> None:
    """Copy every tensor ``module`` needs from ``file_state``; extra file keys are ignored.

    rename maps a file key to the module's key name. A missing key or a shape mismatch is an
    ``InpaintlabError`` naming the file; BatchNorm ``num_batches_tracked`` may be absent (older files).
    """
    renamed = {rename(k): v for k, v in file_state.items()}
    wanted = module.state_dict()
    for key, ours in wanted.items():
        if key not in renamed:
            if key.endswith("num_batches_tracked"):
                continue
            raise InpaintlabError(f"{source} lacks {key!r} needed by {what}: wrong weight file?")
        if tuple(renamed[key].shape) != tuple(ours.shape):
            raise InpaintlabError(
                f"{source}: {key!r} has shape {tuple(renamed[key].shape)}, {what} expects {tuple(ours.shape)}: wrong weight file?"
            )
        with torch.no_grad():
            ours.copy_(renamed[key].to(ours.dtype))


class _FrozenNet(nn.Module):
    """Base for the feature nets: frozen parameters, always in eval mode; ``weights_source`` says what loaded."""

    weights_source: str = "random"

    def freeze(self) -> None:
        """Turn off gradients and switch to eval mode for good."""
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> _FrozenNet:
        """Ignore ``mode``: a feature net always runs in eval mode (fixed BatchNorm statistics)."""
        return super().train(False)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Context in which the CPU RNG is seeded with ``seed`` (random init), leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --------------------------------------------------------------------------------------------- VGG16

_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16_tap_indices() -> dict[str, int]:
    """Tap name -> index in torchvision ``vgg16().features`` of the layer whose output is returned."""
    taps: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in _VGG16_CONFIG:
        if item == "M":
            taps[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            taps[f"conv{block}_{conv}"] = index
            taps[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return taps


VGG16_TAPS: dict[str, int] = _vgg16_tap_indices()


class VGG16Features(_FrozenNet):
    """VGG16 convolutional trunk with named taps (``pool1``..``pool5``, ``relu1_1``..``relu5_3``, ``conv*_*``).

    ``self.features`` is an ``nn.Sequential`` with torchvision's ``vgg16().features`` indices, so the keys
    ``features.N.weight/bias`` of ``vgg16-397923af.pth`` load unchanged (``classifier.*`` is ignored), and
    only layers up to the deepest requested tap are built. The input is used as given (the caller picks
    the scaling: [0,1], [-1,1] or ImageNet-normalised). ReLUs are not in-place so taps stay intact.

    forward: (B,3,H,W) -> list of feature maps in the order of ``layers``.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        weights: str | Path | None = "imagenet",
        *,
        seed: int = 0,
        allow_download: bool = False,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_TAPS]
        if unknown or not layers:
            raise InpaintlabError(f"unknown VGG16 taps {unknown or list(layers)}; choose from {list(VGG16_TAPS)}")
        self.layers = tuple(layers)
        self.tap_indices = tuple(VGG16_TAPS[name] for name in self.layers)
        path = resolve_weights(VGG16_FILE, weights, allow_download=allow_download)
        with _seeded(seed):
            modules: list[nn.Module] = []
            in_channels = 3
            for item in _VGG16_CONFIG:
                if len(modules) > max(self.tap_indices):
                    break
                if item == "M":
                    modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    modules += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                    in_channels = item
            self.features = nn.Sequential(*modules[: max(self.tap_indices) + 1])
        if path is not None:
            load_matching(self, read_state_file(path), path, "VGG16")
            self.weights_source = str(path)
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: (B,3,H,W) scaled as the caller wants -> [(B,C_k,H_k,W_k)] in the order of ``layers``."""
        outputs: dict[int, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.tap_indices:
                outputs[index] = x
        return [outputs[index] for index in self.tap_indices]


# --------------------------------------------------------------------------------- AlexNet + LPIPS

#: torchvision ``alexnet().features`` indices of the five ReLUs LPIPS taps (relu1..relu5) and their widths.
ALEXNET_TAPS = (1, 4, 7, 9, 11)
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)


def _lpips_head_key(file_key: str) -> str:
    """Map an ``lpips`` head key ``lin{k}.model.1.weight`` (Dropout at model.0) to ours, ``heads.{k}.weight``."""
    if file_key.startswith("lin") and ".model." in file_key:
        index = file_key[3 : file_key.index(".")]
        return f"heads.{index}.{file_key.rsplit('.', 1)[-1]}"
    return file_key


class LPIPS(_FrozenNet):
    """LPIPS v0.1 with the AlexNet trunk: ``forward(a, b) -> (B,)`` for images (B,3,H,W) in [0,1].

    Steps (as the ``lpips`` package): x -> 2x-1 -> scaling layer ``(x - shift) / scale`` with shift
    (-.030,-.088,-.188), scale (.458,.448,.450) -> AlexNet ReLU1..5 -> unit-normalise each feature vector
    over channels (eps 1e-10) -> squared difference -> 1x1 linear head (no bias) -> spatial mean -> sum.
    Trunk ``features.N.*`` keys are torchvision's (``alexnet-owt-7be5be79.pth``, classifier ignored); head
    keys map ``lin{k}.model.1.weight`` (``alex.pth``) -> ``heads.{k}.weight``.
    With ``head_weights="random"`` the heads get |default init| so distances stay non-negative (the
    ``lpips`` training also clamps them at 0); such results are not LPIPS and must be labelled random.
    """

    def __init__(
        self,
        trunk_weights: str | Path | None = "pretrained",
        head_weights: str | Path | None = "pretrained",
        *,
        seed: int = 0,
        allow_download: bool = False,
    ) -> None:
        super().__init__()
        trunk_path = resolve_weights(ALEXNET_FILE, trunk_weights, allow_download=allow_download)
        head_path = resolve_weights(LPIPS_ALEX_FILE, head_weights, allow_download=allow_download)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        with _seeded(seed):
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(384, 256, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(256, 256, kernel_size=3, padding=1),
                nn.ReLU(),
            )
            self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in ALEXNET_CHANNELS)
        sources = []
        if trunk_path is not None:
            load_matching(
                self.features,
                read_state_file(trunk_path),
                trunk_path,
                "the LPIPS AlexNet trunk",
                lambda key: key.removeprefix("features."),
            )
            sources.append(f"trunk={trunk_path}")
        else:
            sources.append("trunk=random")
        if head_path is not None:
            load_matching(
                self.heads,
                read_state_file(head_path),
                head_path,
                "the LPIPS v0.1 heads",
                lambda key: _lpips_head_key(key).removeprefix("heads."),
            )
            sources.append(f"heads={head_path}")
        else:
            with torch.no_grad():
                for head in self.heads:
                    head.weight.abs_()
            sources.append("heads=random")
        self.weights_source = ", ".join(sources)
        self.freeze()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b: (B,3,H,W) in [0,1] -> (B,) LPIPS distance."""
        feats_a = self._trunk((2 * a - 1 - self.shift) / self.scale)
        feats_b = self._trunk((2 * b - 1 - self.shift) / self.scale)
        total = a.new_zeros(a.shape[0])
        for head, fa, fb in zip(self.heads, feats_a, feats_b):
            fa = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total

    def _trunk(self, x: Tensor) -> list[Tensor]:
        """(B,3,H,W) scaled input -> the five ReLU outputs."""
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in ALEXNET_TAPS:
                taps.append(x)
        return taps


# ------------------------------------------------------------------------------- InceptionV3 (FID)


class _ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU; keys ``conv.weight``, ``bn.*`` as torchvision's BasicConv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    """TF-style 3x3/1 average pool: padding is excluded from the mean (``count_include_pad=False``)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """FID Inception-A (Mixed_5b/c/d): out 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = _ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg_pool_3x3(x)),
            ],
            dim=1,
        )


class _BlockB(nn.Module):
    """Inception-B (Mixed_6a), stride-2 reduction: out 384 + 96 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            dim=1,
        )


class _BlockC(nn.Module):
    """FID Inception-C (Mixed_6b..e), factorised 7x7: out 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = _ConvBN(in_channels, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(in_channels, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = self.branch7x7dbl_2(self.branch7x7dbl_1(x))
        double = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(double)))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                double,
                self.branch_pool(_avg_pool_3x3(x)),
            ],
            dim=1,
        )


class _BlockD(nn.Module):
    """Inception-D (Mixed_7a), stride-2 reduction: out 320 + 192 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_2(self.branch7x7x3_1(x))
        seven = self.branch7x7x3_4(self.branch7x7x3_3(seven))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class _BlockE(nn.Module):
    """FID Inception-E (Mixed_7b: average pool without padding; Mixed_7c: max pool): out 2048 channels."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = _ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = _ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(single),
                self.branch3x3_2b(single),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class InceptionV3Pool3(_FrozenNet):
    """InceptionV3 as used for FID (pytorch-fid's TF-FID port): (B,3,H,W) in [0,1] -> (B,2048) pool3 features.

    Input: bilinear resize to 299x299 (``align_corners=False``), then 2x-1. Blocks carry the FID variants:
    Mixed_5b-d / 6b-e / 7b average-pool with ``count_include_pad=False``, Mixed_7c max-pools. Module names
    equal torchvision's Inception3, so ``pt_inception-2015-12-05-6726825d.pth`` loads unchanged (its ``fc.*``
    1008-way classifier is ignored; missing BatchNorm ``num_batches_tracked`` entries are tolerated).
    """

    def __init__(self, weights: str | Path | None = "pretrained", *, seed: int = 0, allow_download: bool = False) -> None:
        super().__init__()
        path = resolve_weights(INCEPTION_FID_FILE, weights, allow_download=allow_download)
        with _seeded(seed):
            self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
            self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
            self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
            self.Mixed_5b = _BlockA(192, pool_features=32)
            self.Mixed_5c = _BlockA(256, pool_features=64)
            self.Mixed_5d = _BlockA(288, pool_features=64)
            self.Mixed_6a = _BlockB(288)
            self.Mixed_6b = _BlockC(768, channels_7x7=128)
            self.Mixed_6c = _BlockC(768, channels_7x7=160)
            self.Mixed_6d = _BlockC(768, channels_7x7=160)
            self.Mixed_6e = _BlockC(768, channels_7x7=192)
            self.Mixed_7a = _BlockD(768)
            self.Mixed_7b = _BlockE(1280, pool="avg")
            self.Mixed_7c = _BlockE(2048, pool="max")
        if path is not None:
            load_matching(self, read_state_file(path), path, "the FID InceptionV3")
            self.weights_source = str(path)
        self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,3,H,W) in [0,1] -> (B,2048)."""
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c):
            x = block(x)
        for block in (self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

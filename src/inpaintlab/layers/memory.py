"""Cross-Image Context Memory (CICM; Feng, Feng, Li and Lin, NeurIPS 2022): memory, generalisation, augmentation.

A feature map (B,C,h,w) is read as N = B*h*w regional features F_n in R^C, one per position (a position
stands for an (H/h) x (W/w) pixel region of the input). The memory holds L sets of K cross-image features
C_{l,k} and one anchor A_l per set, as buffers: saved, loaded and moved with the model.

* Generalisation (training only; Eqs. 1-3): every complete region (no hole pixel) picks the set of its
  most similar anchor (dot product), is injected into that set's features with softmax weights
  ``lambda_k = softmax_k(F . C_{l,k})``, and after the mini-batch every anchor takes the momentum update
  ``A_l <- beta A_l + (1 - beta)/K sum_k C_{l,k}`` (beta = ``momentum`` = 0.5).
* Augmentation (Eq. 4): every region picks its set the same way and is mixed with
  ``ctx = sum_k lambda_k C_{l,k}`` by the corrupted ratio gamma (a 1x1 conv + sigmoid on F).

Choices where the paper is silent or contradicts itself (each a keyword argument):
* ``gamma_side="prose"``: ``R = (1 - gamma) F + gamma ctx``. Eq. 4 prints ``R = gamma F + (1 - gamma) ctx``,
  but the prose ("a larger ratio ... is significantly augmented by the context") and the "w/o ratio"
  ablation (gamma = 1 "fully propagates" the context) need the prose reading; ``"equation"`` keeps Eq. 4.
* ``injection="average"``: ``C <- (C + sum_n lambda_n F_n) / (1 + sum_n lambda_n)``. Eq. 2 as printed
  (``"additive"``, ``C <- C + lambda F``) grows without bound (every step adds features), so dot products
  and the context explode over training; the average keeps C on the scale of F and equals
  ``C + lambda/(1+lambda) (F - C)`` for one region. Both are applied batch-wise, with lambda computed
  from the memory at the start of the batch (order-independent, hence exact under DDP).
* Eq. 8 (prose reading of Sec. 4.3): ``inter`` = mean over all anchor pairs (l, o) (l = o included, as
  printed) of sim(A_l, A_o), minimised; ``intra`` = **minus** the mean of sim(A_l, C_{l,k}), so that
  minimising ``weight * intra`` maximises the similarity. Means instead of sums keep the paper's
  weights (20, 0.5) independent of L and K. ``term_similarity="cosine"`` (default): the dot product is
  unbounded, so maximising it rewards inflating the features; ``"dot"`` is the literal form. The terms
  are computed on the memory as updated by this batch, which carries the gradient to the network.
* Memory initialisation: features ~ N(0, 1) from ``memory_seed``, each anchor the mean of its set (the
  fixed point of Eq. 3). The paper only hints at zeros (Sec. 5.1: never-updated features hold "meaningless
  zeros"); from zeros all anchors start tied in Eq. 1 and the K features of a set stay identical forever.
* ``softmax_similarity``: scores of the softmax in Eqs. 2/4 (x ``softmax_scale``), ``"dot"`` (as printed;
  nearly one-hot at 512 channels, see ``models/cicm.py``), ``"scaled_dot"`` (F.C / sqrt(C)) or ``"cosine"``.
* DDP rule: the per-feature sums of a batch (sum_n lambda_n and sum_n lambda_n F_n) are all-reduced (sum)
  over ranks before the update, so every rank applies the update of the global batch; identical buffers
  stay bit-identical (``sync_distributed``).
Ablations (Tables 1-2): ``update_fraction`` / ``augment_fraction`` (top-50% = 0.5; 0 = top-1: the
softmax runs over the top ``max(1, round(fraction*K))`` features of the set), ``memory_mode``
(``"anchors_only"``: sets of one feature, the context is the chosen anchor; ``"merged"``: one set of
L*K features, no anchor selection), ``use_inter`` / ``use_intra``.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InpaintlabError

MEMORY_MODES = ("sets", "anchors_only", "merged")
CHOICES = {
    "injection": ("average", "additive"),
    "memory_mode": MEMORY_MODES,
    "term_similarity": ("cosine", "dot"),
    "softmax_similarity": ("dot", "scaled_dot", "cosine"),
}


class CrossImageMemory(nn.Module):
    """L sets x K cross-image features (buffer ``features`` (L,K,C)) and their anchors (buffer ``anchors`` (L,C))."""

    def __init__(
        self,
        channels: int,
        sets: int = 13,
        set_size: int = 40,
        momentum: float = 0.5,
        injection: str = "average",
        update_fraction: float = 1.0,
        augment_fraction: float = 1.0,
        softmax_scale: float = 1.0,
        softmax_similarity: str = "dot",
        memory_mode: str = "sets",
        term_similarity: str = "cosine",
        memory_seed: int = 0,
        sync_distributed: bool = True,
    ):
        super().__init__()
        for name, value in (
            ("injection", injection),
            ("memory_mode", memory_mode),
            ("term_similarity", term_similarity),
            ("softmax_similarity", softmax_similarity),
        ):
            if value not in CHOICES[name]:
                raise InpaintlabError(f"CICM {name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
        for name, value in (("momentum", momentum), ("update_fraction", update_fraction), ("augment_fraction", augment_fraction)):
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InpaintlabError(f"CICM {name} must be a number in [0, 1], got {value!r}")
        if not all(isinstance(v, int) and v >= 1 for v in (channels, sets, set_size)):
            raise InpaintlabError(f"CICM sets and set_size must be integers >= 1, got {sets!r} and {set_size!r}")
        if not isinstance(softmax_scale, (int, float)) or softmax_scale <= 0:
            raise InpaintlabError(f"CICM softmax_scale must be a positive number, got {softmax_scale!r}")
        if memory_mode == "merged":
            sets, set_size = 1, sets * set_size
        elif memory_mode == "anchors_only":
            set_size = 1
        self.momentum, self.injection, self.memory_mode = float(momentum), injection, memory_mode
        self.update_top = max(1, round(update_fraction * set_size))  # features per set that take part
        self.augment_top = max(1, round(augment_fraction * set_size))
        self.softmax_scale, self.term_similarity = float(softmax_scale), term_similarity
        self.softmax_similarity = softmax_similarity
        self.sync_distributed = sync_distributed
        generator = torch.Generator().manual_seed(int(memory_seed))
        features = torch.randn(sets, set_size, channels, generator=generator)
        self.register_buffer("features", features)
        self.register_buffer("anchors", features.mean(1))

    def select(self, feats: Tensor, anchors: Tensor) -> Tensor:
        """Eq. 1: (N,C) regional features, (L,C) anchors -> (N,) index of the most similar anchor."""
        return (feats @ anchors.T).argmax(dim=1)

    def set_weights(self, feats: Tensor, set_index: Tensor, features: Tensor, top: int) -> Tensor:
        """Softmax weights lambda (N,L,K): zero outside each region's set and outside its top features.

        feats (N,C); set_index (N,); features (L,K,C); the softmax runs over the ``top`` largest scores
        (``softmax_scale`` x ``softmax_similarity``) of the chosen set (all of them for top = K).
        """
        sets, size, channels = features.shape
        scale = self.softmax_scale / (math.sqrt(channels) if self.softmax_similarity == "scaled_dot" else 1.0)
        if self.softmax_similarity == "cosine":
            feats, features = F.normalize(feats, dim=-1), F.normalize(features, dim=-1)
        scores = scale * (feats @ features.reshape(sets * size, -1).T).reshape(-1, sets, size)
        chosen = scores[torch.arange(len(feats), device=feats.device), set_index]  # (N,K)
        if top < size:
            kth = chosen.topk(top, dim=1).values[:, -1:]
            chosen = chosen.masked_fill(chosen < kth, float("-inf"))
        weights = torch.softmax(chosen, dim=1)
        return F.one_hot(set_index, sets).to(weights.dtype)[:, :, None] * weights[:, None, :]

    def generalise(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        """Eqs. 1-3 for the complete regions of a batch: feats (N,C) -> updated (anchors (L,C), features (L,K,C)).

        The buffers receive the update of the global batch (summed over DDP ranks), detached; the returned
        tensors have the same value and carry the gradient of this rank's ``feats``.
        """
        old_anchors, old_features = self.anchors.clone(), self.features.clone()  # autograd keeps these
        sets, size, channels = old_features.shape
        weights = self.set_weights(feats, self.select(feats, old_anchors), old_features, self.update_top)
        mass = weights.sum(0)[..., None]  # (L,K,1) sum_n lambda_n
        injected = (weights.reshape(-1, sets * size).T @ feats).reshape(sets, size, channels)
        local = torch.cat([mass, injected], dim=-1)
        total = self._sum_over_ranks(local.detach())
        anchors, features = self._updated(old_anchors, old_features, local + (total - local).detach())
        with torch.no_grad():
            exact_anchors, exact_features = self._updated(old_anchors, old_features, total)
            self.anchors.copy_(exact_anchors)
            self.features.copy_(exact_features)
        return anchors, features

    def _updated(self, anchors: Tensor, features: Tensor, stats: Tensor) -> tuple[Tensor, Tensor]:
        """Eqs. 2-3 from batch sums ``stats`` (L,K,1+C) = [sum_n lambda, sum_n lambda F]."""
        mass, injected = stats[..., :1], stats[..., 1:]
        features = (features + injected) / (1 + mass) if self.injection == "average" else features + injected
        anchors = self.momentum * anchors + (1 - self.momentum) * features.mean(dim=1)
        return anchors, features

    def _sum_over_ranks(self, stats: Tensor) -> Tensor:
        if self.sync_distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            stats = stats.clone()
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        return stats

    def context(self, feats: Tensor, anchors: Tensor, features: Tensor) -> Tensor:
        """Eq. 4 context: feats (N,C) -> (N,C) = sum_k lambda_k C_{l,k} of the set chosen by anchor similarity."""
        set_index = self.select(feats, anchors)
        if self.memory_mode == "anchors_only":
            return anchors[set_index]
        weights = self.set_weights(feats, set_index, features, self.augment_top)
        return weights.reshape(len(feats), -1) @ features.reshape(-1, features.shape[-1])

    def similarity_terms(self, anchors: Tensor, features: Tensor, use_inter: bool, use_intra: bool) -> dict[str, Tensor]:
        """Eq. 8 as scalar losses: ``inter`` (minimise) and ``intra`` (negated: minimise to maximise similarity).

        A term is left out when switched off or meaningless for ``memory_mode`` (no inter for one merged
        set, no intra for sets of one feature).
        """
        if self.term_similarity == "cosine":
            anchors, features = F.normalize(anchors, dim=-1), F.normalize(features, dim=-1)
        terms = {}
        if use_inter and self.memory_mode != "merged":
            terms["inter"] = (anchors @ anchors.T).mean()
        if use_intra and self.memory_mode != "anchors_only":
            terms["intra"] = -(features * anchors[:, None, :]).sum(-1).mean()
        return terms


class CICMBlock(nn.Module):
    """CICM on a feature map: ``forward(x (B,C,h,w), mask (B,1,H,W), masked_image=None, target=None)``.

    Returns ``(R (B,C,h,w), aux)``; H, W multiples of h, w. In training mode the memory is generalised with
    the complete regions and ``aux`` holds ``ratio`` (Eq. 7 as a mean over regions, not a sum, like Eq. 8; when
    ``target`` and ``masked_image`` (B,3,H,W) are given, gamma estimated) and the Eq. 8 terms; eval: no aux.
    ``gamma_mode``: ``"estimated"`` (1x1 conv + sigmoid), ``"one"`` ("w/o ratio": gamma = 1) or
    ``"ground_truth"`` ("w/ GT": gamma = the Eq. 7 ground truth below, so both share one definition).
    ``ratio_target`` (reasons in ``models/cicm.py``): ``"fraction"`` (default; ``"mask"`` is its old name) = the
    region's hole fraction, the share of its pixels whose network input differs from the complete image's;
    ``"difference"`` (old default) = region mean of |zero-filled input - target|: mean intensity, not a ratio.
    """

    def __init__(
        self,
        channels: int,
        sets: int = 13,
        set_size: int = 40,
        gamma_mode: str = "estimated",
        gamma_side: str = "prose",
        ratio_target: str = "fraction",
        use_inter: bool = True,
        use_intra: bool = True,
        **memory_options,
    ):
        super().__init__()
        allowed = {
            "gamma_mode": ("estimated", "one", "ground_truth"),
            "gamma_side": ("prose", "equation"),
            "ratio_target": ("fraction", "difference", "mask"),
        }
        for name, value in (("gamma_mode", gamma_mode), ("gamma_side", gamma_side), ("ratio_target", ratio_target)):
            if value not in allowed[name]:
                raise InpaintlabError(f"CICM {name} must be one of {', '.join(allowed[name])}, got {value!r}")
        unknown = sorted(set(memory_options) - set(inspect.signature(CrossImageMemory).parameters))
        if unknown:
            raise InpaintlabError(f"CICM has no option {unknown[0]!r}; see inpaintlab.layers.memory for the options")
        self.memory = CrossImageMemory(channels, sets, set_size, **memory_options)
        self.ratio = nn.Conv2d(channels, 1, 1) if gamma_mode == "estimated" else None
        self.gamma_mode, self.gamma_side, self.ratio_target = gamma_mode, gamma_side, ratio_target
        self.use_inter, self.use_intra = bool(use_inter), bool(use_intra)

    def forward(
        self, x: Tensor, mask: Tensor, masked_image: Tensor | None = None, target: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        b, c, h, w = x.shape
        if mask.shape[-2] % h or mask.shape[-1] % w:
            raise InpaintlabError(
                f"CICM needs the image size {tuple(mask.shape[-2:])} to be a multiple of its feature size {h}x{w}"
            )
        cell = (mask.shape[-2] // h, mask.shape[-1] // w)
        holes = F.avg_pool2d(mask.float(), cell)  # (B,1,h,w) hole fraction per region
        with torch.autocast(x.device.type, enabled=False):
            feats = x.float().permute(0, 2, 3, 1).reshape(-1, c)
            if self.training:
                anchors, features = self.memory.generalise(feats[holes.reshape(-1) == 0])
            else:
                anchors, features = self.memory.anchors, self.memory.features
            context = self.memory.context(feats, anchors, features).reshape(b, h, w, c).permute(0, 3, 1, 2)
            if self.gamma_mode == "estimated":
                gamma = torch.sigmoid(self.ratio(x.float()))
            elif self.gamma_mode == "one":
                gamma = torch.ones_like(holes)
            else:
                gamma = self.ratio_truth(mask, masked_image, target, cell)
            if self.gamma_side == "prose":
                out = (1 - gamma) * x.float() + gamma * context
            else:
                out = gamma * x.float() + (1 - gamma) * context
            aux: dict[str, Tensor] = {}
            if self.training:
                if self.ratio is not None and (target is not None or self.ratio_target != "difference"):
                    aux["ratio"] = F.mse_loss(gamma, self.ratio_truth(mask, masked_image, target, cell))
                aux.update(self.memory.similarity_terms(anchors, features, self.use_inter, self.use_intra))
        return out.to(x.dtype), aux

    def ratio_truth(self, mask: Tensor, masked_image: Tensor | None, target: Tensor | None, cell: tuple[int, int]) -> Tensor:
        """Ground-truth corrupted ratio per region (B,1,h,w) for Eq. 7 and "w/ GT" (see ``ratio_target``)."""
        if self.ratio_target != "difference":
            return F.avg_pool2d(mask.float(), cell)
        if masked_image is None or target is None or target.shape != masked_image.shape:
            raise InpaintlabError(
                "CICM ratio_target='difference' needs the input image and a target of the same shape "
                "(B,3,H,W), also for gamma_mode='ground_truth' at inference"
            )
        return F.avg_pool2d((masked_image.float() - target.float()).abs().mean(1, keepdim=True), cell)

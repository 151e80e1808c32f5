"""Measurements behind docs/audit_cicm_cstfnet.md (issue 15: CICM and CSTFNet faithfulness fixes).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python docs/audit_cicm_cstfnet.py [PART ...]

PART (default: all): ``cstfnet-scale`` (Eq. 20 against the pixel terms at initialisation, 64/128/256 px),
``cstfnet-run`` (a short cstfnet_tiny run: the Eq. 20 term next to a scale-invariant version of it),
``cicm-softmax`` (softmax weights of Eqs. 2/4 at initialisation under each similarity), ``cicm-ratio``
(Eq. 7 ground truth on photos). Everything is seeded; batch 2; CPU, one thread.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import time

import numpy as np
import torch

from inpaintlab.data import builtin_images
from inpaintlab.losses import GeneratorLoss
from inpaintlab.masks import build_mask_source
from inpaintlab.models import create_model
from inpaintlab.models.cstfnet import CSTFNet, decoder_feature_distance, simsiam_loss
from inpaintlab.presets import PRESETS
from inpaintlab.types import InpaintOutput


def photo_batch(size: int, n: int = 2, seed: int = 0, offset: int = 0):
    """n built-in photo crops (n,3,size,size) in [0,1] and two independent seeded stroke masks."""
    photos = builtin_images("train", size)
    image = torch.stack([torch.from_numpy(photos[(offset + i * 7) % len(photos)][1]).permute(2, 0, 1).float() / 255
                         for i in range(n)])
    rng, source = np.random.default_rng(seed), build_mask_source("strokes", size)
    mask = torch.stack([source(rng) for _ in range(n)])
    mask2 = torch.stack([source(rng) for _ in range(n)])
    return image, mask, mask2


def pixel_total(branch, image, mask) -> float:
    """CSTFNet's pixel terms with the preset weights (hole 6, valid 1, region-normalised, coarse + refined)."""
    cfg = dataclasses.replace(PRESETS["cstfnet_places2"].loss, perceptual=0.0, style=0.0, adversarial=0.0, aux={})
    out = InpaintOutput(pred=(branch.pred + 1) / 2, stages=((branch.coarse + 1) / 2,), aux={})
    _, logs = GeneratorLoss(cfg)(out, image, mask)
    return float(cfg.valid * logs["g/valid"] + cfg.hole * logs["g/hole"])


def readings() -> list[tuple[str, str, float]]:
    """(label, feature_l2 reduction, weight): the literal reading with the old weight, the per-element "rms"
    (size-independent, not scale-invariant) at a weight of the same start value, and what the preset trains."""
    preset = PRESETS["cstfnet_places2"]
    reduction = preset.model.kwargs.get("feature_l2", inspect.signature(CSTFNet).parameters["feature_l2"].default)
    rows = [("literal norm x 0.01 (before)", "norm", 0.01), ("rms x 0.3 (alternative)", "rms", 0.3)]
    return rows + [(f"preset: {reduction} x {preset.loss.aux['feature_l2']:g} (after)", reduction,
                    preset.loss.aux["feature_l2"])]


def cstfnet_scale() -> None:
    print("## CSTFNet Eq. 20 at initialisation (cstfnet widths, batch 2, builtin photos, seeded strokes)")
    print("size | pixel terms (1 valid + 6 hole, both outputs) | 0.1 x SimSiam | " +
          " | ".join(f"{label}: raw -> weighted" for label, _, _ in readings()))
    for size in (64, 128, 256):
        torch.manual_seed(0)
        model = CSTFNet(coarse_downs=int(math.log2(size))).train()  # full widths; Net_C as deep as the size allows
        image, mask, mask2 = photo_batch(size)
        with torch.no_grad():
            b1 = model.run_branch(image * (1 - mask), mask)
            b2 = model.run_branch(image * (1 - mask2), mask2)
            z1, z2 = model.projector(b1.latent.mean((2, 3))), model.projector(b2.latent.mean((2, 3)))
            con = float(simsiam_loss(model.predictor(z1), model.predictor(z2), z1, z2))
            cells = []
            for _, reduction, weight in readings():
                raw = float(decoder_feature_distance(b1.decoder_features, b2.decoder_features, reduction))
                cells.append(f"{raw:.4g} -> {weight * raw:.4g}")
            print(f"{size} | {pixel_total(b1, image, mask):.3f} | {0.1 * con:.4f} | " + " | ".join(cells))


def relative_distance(feats1, feats2, centred: bool = False) -> float:
    """Scale-invariant Eq. 20: sum over layers of the batch mean of ||X1-X2|| / sqrt((||X1||^2+||X2||^2)/2);
    ``centred``: of the maps less their per-channel spatial means (a shared offset does not lower it)."""
    total = 0.0
    for a, b in zip(feats1, feats2):
        if centred:
            a, b = a - a.mean((2, 3), keepdim=True), b - b.mean((2, 3), keepdim=True)
        a, b = a.flatten(1), b.flatten(1)
        total += float(((a - b).norm(dim=1) / ((a.pow(2).sum(1) + b.pow(2).sum(1)) / 2).sqrt().clamp_min(1e-12)).mean())
    return total


def cstfnet_run(steps: int = 180) -> None:
    print(f"## Short cstfnet_tiny run at 64 px, batch 2, {steps} Adam steps (2e-4, betas 0.5/0.999)")
    print("loss = pixel terms + 0.1 SimSiam + weight x Eq. 20 (no VGG / GAN terms, to keep it short)")
    runs = [("no Eq. 20 term (control)", "norm", 0.0)] + readings()
    for label, reduction, weight in runs:
        torch.manual_seed(0)
        model = create_model("cstfnet_tiny", feature_l2=reduction).train()
        optim = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
        cfg = dataclasses.replace(PRESETS["cstfnet_places2"].loss, perceptual=0.0, style=0.0, adversarial=0.0,
                                  aux={"contrastive": 0.1, "feature_l2": weight})
        loss_fn, rows, start = GeneratorLoss(cfg), [], time.time()
        probe = photo_batch(64, seed=10_000, offset=3)  # a fixed batch for the diagnostics
        for step in range(steps + 1):
            image, mask, mask2 = photo_batch(64, seed=step, offset=step)
            out = model(image, mask, mask2)
            total, logs = loss_fn(out, image, mask)
            if step % (steps // 6) == 0:
                with torch.no_grad():  # train-mode branches on the probe batch
                    b1 = model.run_branch(probe[0] * (1 - probe[1]), probe[1])
                    b2 = model.run_branch(probe[0] * (1 - probe[2]), probe[2])
                    f1, f2 = b1.decoder_features, b2.decoder_features
                    rms = sum(float(f.pow(2).mean().sqrt()) for f in f1) / len(f1)
                    rows.append((step, pixel_total(b1, probe[0], probe[1]), float(decoder_feature_distance(f1, f2, reduction)),
                                 float(decoder_feature_distance(f1, f2, "norm")), relative_distance(f1, f2),
                                 relative_distance(f1, f2, centred=True), rms))
            if step < steps:
                optim.zero_grad()
                total.backward()
                optim.step()
        print(f"### {label} ({time.time() - start:.0f} s)")
        print("step | pixel terms | Eq. 20 as trained | literal norm | scale-invariant | scale-invariant, centred | "
              "mean decoder feature RMS")
        for row in rows:
            print(" | ".join([str(row[0])] + [f"{v:.4g}" for v in row[1:]]))


def cicm_softmax() -> None:
    print("## CICM softmax weights at initialisation (unet_cicm at 256 px, batch 2, train-mode features)")
    torch.manual_seed(0)
    model = create_model("unet_cicm").train()
    image, mask, _ = photo_batch(256)
    seen = {}
    model.cicm.register_forward_pre_hook(lambda module, args: seen.update(x=args[0].detach()))
    memory = model.cicm.memory
    anchors, features = memory.anchors.clone(), memory.features.clone()  # before this batch's update
    with torch.no_grad():
        model(image, mask, target=image)
    x = seen["x"]
    feats = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    complete = torch.nn.functional.avg_pool2d(mask, 256 // x.shape[-1]).reshape(-1) == 0
    set_index = memory.select(feats, anchors)
    k = features.shape[1]
    variants = [("dot, scale 1 (Eqs. 2/4 as printed)", {}),
                ("scaled_dot (F.C / sqrt(C))", {"softmax_similarity": "scaled_dot"}),
                ("cosine / 0.1", {"softmax_similarity": "cosine", "softmax_scale": 10.0})]
    print(f"{len(feats)} regions ({int(complete.sum())} complete), K = {k}, ln K = {math.log(k):.3f}")
    print("similarity | share of regions (complete ones) with max weight > 0.99 | mean entropy (nats) | "
          "entropy / ln K | mean ||ctx(100 % aug) - ctx(top-1 aug)|| / ||ctx(top-1 aug)||")
    for label, options in variants:
        for name, value in options.items():
            setattr(memory, name, value)
        w = memory.set_weights(feats, set_index, features, k).sum(1)  # (N,K) over the chosen set
        entropy = -(w * w.clamp_min(1e-30).log()).sum(1)
        full = memory.context(feats, anchors, features)
        top, memory.augment_top = memory.augment_top, 1
        top1 = memory.context(feats, anchors, features)
        memory.augment_top = top
        change = ((full - top1).norm(dim=1) / top1.norm(dim=1)).mean()
        peaked = w.max(1).values > 0.99
        print(f"{label} | {float(peaked.float().mean()):.3f} ({float(peaked[complete].float().mean()):.3f}) | "
              f"{float(entropy.mean()):.3f} | "
              f"{float(entropy.mean()) / math.log(k):.3f} | {float(change):.3f}")
        memory.softmax_scale, memory.softmax_similarity = 1.0, "dot"


def cicm_ratio() -> None:
    print("## CICM Eq. 7 ground truth on photos (256 px, 16x16-pixel regions, seeded strokes, batch 2)")
    from inpaintlab.layers.memory import CICMBlock

    image, mask, _ = photo_batch(256)
    dark = image * 0.1  # the same photos, 10x darker
    holes = torch.nn.functional.avg_pool2d(mask, 16).reshape(-1)
    full, half = holes == 1, (holes > 0.4) & (holes < 0.6)
    for target in ("difference", "fraction"):
        block = CICMBlock(8, sets=2, set_size=2, ratio_target=target)
        cells = []
        for name, img in (("photo", image), ("10x darker", dark)):
            truth = block.ratio_truth(mask, img * (1 - mask), img, (16, 16)).reshape(-1)
            cells.append(f"{name}: fully corrupted regions mean {float(truth[full].mean()):.3f} "
                         f"(min {float(truth[full].min()):.3f}), ~half corrupted mean {float(truth[half].mean()):.3f}")
        print(f"ratio_target={target}: " + "; ".join(cells))


PARTS = {"cstfnet-scale": cstfnet_scale, "cstfnet-run": cstfnet_run, "cicm-softmax": cicm_softmax,
         "cicm-ratio": cicm_ratio}

if __name__ == "__main__":
    torch.set_num_threads(1)
    for part in sys.argv[1:] or list(PARTS):
        PARTS[part]()
        print()

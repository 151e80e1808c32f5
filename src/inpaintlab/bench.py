"""Model cost: parameters, MACs (true and paper/thop convention), CPU latency, GPU latency/throughput/memory.

Two MAC counts are reported because published inpainting tables use the thop convention (see
implementation-notes 1.11: LGNet's "69.62 GFLOPs" is a thop MAC count, its true cost is 43.03 GMAC):

``true_macs``  ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2: every conv, transposed conv,
               matmul/bmm/linear and scaled-dot-product attention (including the CPU SDPA kernel, which
               torch's table lacks), functional calls included. Element-wise ops (BN, activations) are not
               counted.
``thop_macs``  module hooks like thop 0.1.x: Conv/Linear = out_numel * Cin/groups * prod(k) (bias not
               counted), ConvTranspose = out_numel * Cin/groups * prod(k) (4x the true cost at stride 2),
               BatchNorm = 2 ops per input element, anything functional (attention) not counted.

All MAC numbers are per image (batch 1) at the requested size. Latency: warm-up runs then ``repeats``
timed runs under ``torch.inference_mode``; median and p90 (linear interpolation) in milliseconds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .errors import InpaintlabError
from .types import contract_of

_THOP_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_THOP_CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_THOP_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bench_inputs(size: int, batch: int = 1, device: str | torch.device = "cpu", seed: int = 0) -> tuple[Tensor, Tensor]:
    """Seeded random image (batch,3,size,size) in [0,1] and a centred square hole of side size/2 (batch,1,size,size)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=gen)
    mask = torch.zeros(batch, 1, size, size)
    lo, hi = size // 4, size // 4 + size // 2
    mask[:, :, lo:hi, lo:hi] = 1.0
    return image.to(device), mask.to(device)


def count_parameters(model: nn.Module) -> dict[str, Any]:
    """``{"total", "trainable", "per_child": {name: count}}``; shared parameters are counted once in total."""
    unique = {id(p): p for p in model.parameters()}.values()
    return {
        "total": sum(p.numel() for p in unique),
        "trainable": sum(p.numel() for p in unique if p.requires_grad),
        "per_child": {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()},
    }


def _inclusive_flops(counts: dict[str, int], name: str) -> int:
    """FLOPs under module ``name``; a container never called itself (ModuleList) sums its called children."""
    if name in counts:
        return counts[name]
    children = {key[len(name) + 1 :].split(".")[0] for key in counts if key.startswith(name + ".")}
    return sum(_inclusive_flops(counts, f"{name}.{child}") for child in children)


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def true_macs(model: nn.Module, image: Tensor, mask: Tensor) -> dict[str, Any]:
    """``{"total", "per_child"}`` MACs (FLOPs/2) of one ``model(image, mask)`` call, image (B,3,H,W)."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(image, mask)
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    return {
        "total": counter.get_total_flops() // 2,
        "per_child": {name: _inclusive_flops(counts, f"{root}.{name}") // 2 for name, _ in model.named_children()},
    }


def _is(module: nn.Module, types: tuple, exact: bool) -> bool:
    return type(module) in types if exact else isinstance(module, types)


def _thop_module_macs(module: nn.Module, inputs: tuple, output: Any, exact_types: bool) -> int:
    out = output[0] if isinstance(output, (tuple, list)) else output
    if _is(module, _THOP_CONV + _THOP_CONVT, exact_types):
        return out.numel() * (module.in_channels // module.groups) * int(np.prod(module.kernel_size))
    if _is(module, (nn.Linear,), exact_types):
        return out.numel() * module.in_features
    if _is(module, _THOP_BN, exact_types):
        return 2 * inputs[0].numel()
    return 0


def thop_macs(model: nn.Module, image: Tensor, mask: Tensor, exact_types: bool = False) -> dict[str, Any]:
    """``{"total", "per_child"}`` MACs in the paper/thop convention (module docstring).

    exact_types: thop looks rules up by exact module type, so subclasses of ``nn.Conv2d`` (e.g. partial
    convolutions) are silently skipped by thop; the default (False) counts subclasses too, which is the
    cost actually run. Set True to reproduce thop's number exactly.
    """
    owner = {}
    for name, child in model.named_children():
        for sub in child.modules():
            owner.setdefault(sub, name)
    totals: dict[str, int] = {name: 0 for name, _ in model.named_children()}
    grand = [0]

    def hook(module, inputs, output):
        macs = _thop_module_macs(module, inputs, output, exact_types)
        grand[0] += macs
        if module in owner:
            totals[owner[module]] += macs

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(image, mask)
    finally:
        for h in handles:
            h.remove()
    return {"total": grand[0], "per_child": totals}


def _timed_runs(model: nn.Module, image: Tensor, mask: Tensor, repeats: int, warmup: int, cuda: bool) -> list[float]:
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(image, mask)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    return times


def _latency_summary(times_ms: list[float], batch: int) -> dict[str, Any]:
    return {
        "batch": batch,
        "repeats": len(times_ms),
        "median_ms": float(np.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "min_ms": float(min(times_ms)),
    }


def cpu_latency(model: nn.Module, size: int, batch: int = 1, repeats: int = 10, warmup: int = 2) -> dict[str, Any]:
    """CPU latency of ``model`` (already on CPU) at (batch,3,size,size): median/p90/min ms + thread count."""
    image, mask = bench_inputs(size, batch)
    summary = _latency_summary(_timed_runs(model, image, mask, repeats, warmup, cuda=False), batch)
    summary["threads"] = torch.get_num_threads()
    return summary


def gpu_stats(
    model: nn.Module, size: int, batch: int = 1, repeats: int = 10, warmup: int = 2, throughput_batch: int = 16
) -> dict[str, Any]:
    """CUDA latency at ``batch``, throughput (images/s) at ``throughput_batch`` (halved on OOM), peak memory (MiB)."""
    device = torch.device("cuda")
    model = model.to(device)
    image, mask = bench_inputs(size, batch, device)
    torch.cuda.reset_peak_memory_stats(device)
    latency = _latency_summary(_timed_runs(model, image, mask, repeats, warmup, cuda=True), batch)
    latency["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    tb = throughput_batch
    while True:
        try:
            image, mask = bench_inputs(size, tb, device)
            torch.cuda.reset_peak_memory_stats(device)
            times = _timed_runs(model, image, mask, max(3, repeats // 2), 1, cuda=True)
            break
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if tb == 1:
                raise InpaintlabError(f"model does not fit on the GPU at {size}x{size} even with batch 1") from None
            tb //= 2
    return {
        "device_name": torch.cuda.get_device_name(device),
        "latency": latency,
        "throughput": {
            "batch": tb,
            "images_per_s": tb / (float(np.median(times)) / 1000.0),
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
        },
    }


def benchmark(
    model: nn.Module,
    *,
    size: int = 256,
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    device: str = "cpu",
    throughput_batch: int = 16,
    exact_thop_types: bool = False,
) -> dict[str, Any]:
    """Full cost report of ``model`` (module docstring); device "cuda" adds ``gpu`` (latency, throughput, memory)."""
    multiple = contract_of(model).size_multiple
    if size < 1 or size % multiple:
        raise InpaintlabError(f"--size must be a positive multiple of {multiple} for this model, got {size}")
    if batch < 1 or repeats < 1 or warmup < 0:
        raise InpaintlabError(f"batch and repeats must be >= 1 and warm-up >= 0, got {batch}, {repeats}, {warmup}")
    if device not in ("cpu", "cuda"):
        raise InpaintlabError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InpaintlabError("--device cuda was requested but CUDA is not available on this machine")
    model = model.cpu().eval()
    image, mask = bench_inputs(size, 1)
    report = {
        "model": contract_of(model).model_name,
        "size": size,
        "params": count_parameters(model),
        "true_macs": true_macs(model, image, mask),
        "thop_macs": thop_macs(model, image, mask, exact_types=exact_thop_types),
        "cpu_latency": cpu_latency(model, size, batch, repeats, warmup),
        "torch_version": torch.__version__,
    }
    if device == "cuda":
        report["gpu"] = gpu_stats(model, size, batch, repeats, warmup, throughput_batch)
        model.cpu()
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable table of a ``benchmark`` report."""
    p, t, h = report["params"], report["true_macs"], report["thop_macs"]
    lat = report["cpu_latency"]
    lines = [
        f"model {report['model']} at {report['size']}x{report['size']} (MACs per image, batch 1)",
        f"{'':24s}{'params':>16s}{'true GMACs':>14s}{'thop GMACs':>14s}",
        f"{'total':24s}{p['total']:>16,d}{t['total'] / 1e9:>14.3f}{h['total'] / 1e9:>14.3f}",
    ]
    for name, count in p["per_child"].items():
        lines.append(f"  {name:22s}{count:>16,d}{t['per_child'][name] / 1e9:>14.3f}{h['per_child'][name] / 1e9:>14.3f}")
    lines.append(f"{'trainable':24s}{p['trainable']:>16,d}")
    lines.append(
        f"CPU latency (batch {lat['batch']}, {lat['threads']} threads, {lat['repeats']} runs): "
        f"median {lat['median_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms"
    )
    if "gpu" in report:
        g, tp = report["gpu"]["latency"], report["gpu"]["throughput"]
        lines.append(
            f"GPU {report['gpu']['device_name']}: latency (batch {g['batch']}) median {g['median_ms']:.2f} ms, "
            f"p90 {g['p90_ms']:.2f} ms, peak {g['peak_memory_mib']:.0f} MiB; "
            f"throughput {tp['images_per_s']:.1f} img/s at batch {tp['batch']}, peak {tp['peak_memory_mib']:.0f} MiB"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- training throughput

_PARITY_TERMS = ("g/total", "d/loss")
TRAIN_VARIANTS = ("fp32", "bf16", "channels_last", "bf16+channels_last", "compile", "bf16+compile")


def train_throughput(
    cfg, variants: tuple[str, ...] = TRAIN_VARIANTS, steps: int = 5, warmup: int = 2, device: str = "cpu"
) -> dict[str, Any]:
    """Images/s of full training steps (G forward, D step, G step, EMA) of recipe ``cfg`` per variant.

    Every variant builds the same ``Trainer`` (same seed, so the same initial weights) and runs
    ``warmup + steps`` steps on one fixed batch (``cfg.batch_size`` images of ``cfg.data``, their masks).
    Variants: "fp32"; "bf16" = autocast bf16; "channels_last" = G, D and the batch in channels-last
    layout; "compile" = ``torch.compile`` of the G and D that the steps call; "+" combines them.
    Parity: the two losses that drive the updates ("g/total", "d/loss") of the first step (computed before
    any update, from identical weights and batch) against fp32's, as the larger relative difference (small
    terms such as D's real/fake scores are listed in ``first_losses`` but not compared relatively).
    Returns {"model", "size", "batch", "threads", "variants": {name: {images_per_s, step_ms, first_losses,
    max_rel_diff_vs_fp32} or {"error": text}}}.
    """
    import dataclasses
    import tempfile

    from .data import collate_samples
    from .train import Trainer

    unknown = [v for v in variants if any(part not in ("fp32", "bf16", "channels_last", "compile") for part in v.split("+"))]
    if unknown or steps < 1 or warmup < 0:
        raise InpaintlabError(
            f"train bench: variants must combine fp32/bf16/channels_last/compile with '+' and "
            f"steps >= 1, got {unknown or variants}, steps={steps}"
        )
    results: dict[str, Any] = {}
    reference: dict[str, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("fp32",) + tuple(v for v in variants if v != "fp32"):
            parts = set(variant.split("+"))
            run_cfg = dataclasses.replace(
                cfg, amp="bf16" if "bf16" in parts else "none", data=dataclasses.replace(cfg.data, val_count=0, num_workers=0)
            )
            try:
                trainer = Trainer(run_cfg, tmp, device=device)
                batch = collate_samples([trainer.train_set[i % len(trainer.train_set)] for i in range(cfg.batch_size)])
                image, mask, extras = batch.image, batch.mask, batch.extras
                layout = torch.channels_last if "channels_last" in parts else torch.contiguous_format
                for module in (trainer.generator, trainer.discriminator, trainer.ema):  # whatever the model's default
                    if module is not None:
                        module.to(memory_format=layout)
                image, mask = (t.contiguous(memory_format=layout) for t in (image, mask))
                if "compile" in parts:
                    trainer.g_train = torch.compile(trainer.generator)
                    if trainer.discriminator is not None:
                        trainer.d_train = torch.compile(trainer.discriminator)
                first = {k: float(v) for k, v in trainer.train_step(image, mask, extras).items()}
                for _ in range(max(warmup - 1, 0)):
                    trainer.train_step(image, mask, extras)
                start = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step(image, mask, extras)
                seconds = (time.perf_counter() - start) / steps
            except Exception as err:  # a variant that cannot run here is reported, the others still run
                results[variant] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
                continue
            if variant == "fp32":
                reference = first
            diff = None
            if reference is not None:
                diff = max(
                    abs(first[k] - reference[k]) / max(abs(reference[k]), 1e-8)
                    for k in _PARITY_TERMS
                    if k in reference and k in first
                )
            results[variant] = {
                "images_per_s": cfg.batch_size / seconds,
                "step_ms": 1000 * seconds,
                "first_losses": first,
                "max_rel_diff_vs_fp32": diff,
            }
    return {
        "model": cfg.model.name,
        "size": cfg.data.size,
        "batch": cfg.batch_size,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "variants": results,
    }


def format_train_report(report: dict[str, Any]) -> str:
    """Markdown table of ``train_throughput``: one row per variant."""
    lines = [
        f"training step of {report['model']} at {report['size']}x{report['size']}, batch {report['batch']}, "
        f"{report['threads']} threads, {report['steps']} timed steps",
        "",
        "| variant | images/s | ms/step | first-step G/D loss: max rel. diff vs fp32 |",
        "|---|---:|---:|---:|",
    ]
    for name, row in report["variants"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | | |")
        else:
            diff = "–" if row["max_rel_diff_vs_fp32"] is None else f"{row['max_rel_diff_vs_fp32']:.2e}"
            lines.append(f"| {name} | {row['images_per_s']:.2f} | {row['step_ms']:.0f} | {diff} |")
    return "\n".join(lines)

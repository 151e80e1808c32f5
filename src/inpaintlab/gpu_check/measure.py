"""Parts 1-3 of a GPU check run: the environment, the generator contract at full size (fp32 and bf16), and the
benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .cuda import _cuda_environment, _free_memory, _peak_mib, _reset_peak, _sync, _throughput_search
from .plan import PAPER_FIGURES, RECIPES, SRC_DIR, Plan
from .processes import run_cli
from .report import _TRACEBACKS, Part, Report, Skip, _one_line


def part_environment(part: Part, plan: Plan) -> None:
    def environment() -> dict[str, Any]:
        env: dict[str, Any] = {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(),
            "torch_threads": torch.get_num_threads(),
            "inpaintlab": _package_version(),
            "git": _git_commit(),
            "data": _data_summary(plan),
        }
        if torch.cuda.is_available():
            env["gpu"] = _cuda_environment()
        problems = []
        if plan.device == "cuda" and not torch.cuda.is_available():
            problems.append("CUDA is not available: the GPU parts cannot run (use --smoke on a CPU machine)")
        return {"environment": env, "problems": problems}

    part.item("environment", environment)


def _package_version() -> str:
    from ..version import __version__

    return __version__


def _git_commit() -> str | None:
    with contextlib.suppress(Exception):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=str(SRC_DIR.parent)
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=str(SRC_DIR.parent),
        )
        if done.returncode == 0:
            return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return None


def _data_summary(plan: Plan) -> dict[str, Any]:
    if plan.data is None:
        return {"kind": "builtin photos and generated masks (smoke)"}
    manifest = plan.data / "manifest.json"
    if not manifest.is_file():
        return {"kind": "missing", "folder": str(plan.data)}
    info = json.loads(manifest.read_text())
    return {"kind": "copied photos", "folder": str(plan.data), "counts": info.get("counts"), "bytes": info.get("bytes")}


def _require_device(plan: Plan) -> None:
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise Skip("CUDA is not available on this machine")


def _require_data(plan: Plan) -> None:
    if plan.data is not None and not (plan.data / "train_images.txt").is_file():
        raise Skip(f"data folder {plan.data} is missing or incomplete: run scripts/gpu_data.sh and carry it (docs/gpu.md)")


def part_contract(part: Part, plan: Plan) -> None:
    _require_device(plan)
    for name in plan.models:
        part.item(name, lambda name=name: contract_check(name, plan.size, plan.batch, plan.device), need_s=3)


def _stroke_batch(size: int, batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from ..masks import bin_stroke_mask

    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=gen)
    masks = [torch.from_numpy(bin_stroke_mask(size, 2 + b % 3, np.random.default_rng([seed, b])) > 0) for b in range(batch)]
    return image.to(device), torch.stack(masks)[:, None].float().to(device)


def _extra_inputs(names: Sequence[str], image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The extra training inputs ``names`` for the probe batch (image (B,3,S,S), mask (B,1,S,S)), made by the
    data path (``data.EXTRA_INPUTS``) from the batch's own images and masks: a new kind needs nothing here."""
    from ..data import ArrayDataset, collate_samples

    if not names:
        return {}
    items = [(f"probe{b}", image[b].mul(255).round().byte().permute(1, 2, 0).cpu().numpy()) for b in range(len(image))]
    masks = mask.cpu()
    dataset = ArrayDataset(
        items,
        size=image.shape[-1],
        preprocess="none",
        mask_source=lambda rng: masks[rng.integers(len(masks))],
        extra_inputs=names,
    )
    return collate_samples([dataset[b] for b in range(len(dataset))]).extras


def _probe_loss(out, image: torch.Tensor) -> torch.Tensor:
    """L1 of every output against the image plus every scalar aux term (tuples: mean of each image)."""
    loss = sum((o.float() - image).abs().mean() for o in out.outputs)
    for value in out.aux.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            loss = loss + v.float().mean()
    return loss


def _amp(device: str, precision: str):
    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _attempt(problems: list[str], label: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with "label: error" added to ``problems``: one failing stage leaves the others running."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        _TRACEBACKS.append(f"{label}:\n{traceback.format_exc()}")
        problems.append(f"{label}: {_one_line(err)}")
        _free_memory()
        return None


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


def contract_check(name: str, size: int, batch: int, device: str) -> dict[str, Any]:
    """Eval: hole noise must not change the output; fp32 vs bf16 inside the hole. Train: fwd+bwd per precision."""
    from ..models import create_model
    from ..train import training_inputs

    torch.manual_seed(0)
    model = create_model(name).to(device)
    image, mask = _stroke_batch(size, batch, device)
    result: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "size": size,
        "batch": batch,
        "hole_ratio": round(float(mask.mean()), 3),
    }
    problems: list[str] = []
    model.eval()
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(1)).to(device)
    hole = mask.expand_as(image) > 0

    def predict(precision: str, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _amp(device, precision):
            return model(x, mask).pred.float()

    pred = predict("fp32", image)
    result["hole_noise_max_abs"] = float((pred - predict("fp32", image * (1 - mask) + noise * mask)).abs().max())
    if not _all_finite([pred]):
        problems.append("non-finite fp32 prediction")
    if not result["hole_noise_max_abs"] <= 1e-4:
        problems.append(f"contract broken: noise inside the hole changed the output by {result['hole_noise_max_abs']:.2e}")
    pred_bf16 = _attempt(problems, "bf16 forward", lambda: predict("bf16", image))
    if pred_bf16 is not None:
        result["bf16_vs_fp32_hole_mean_abs"] = float((pred - pred_bf16).abs()[hole].mean())
        result["bf16_vs_fp32_hole_max_abs"] = float((pred - pred_bf16).abs()[hole].max())
        if not _all_finite([pred_bf16]):
            problems.append("non-finite bf16 prediction")
    model.train()
    extras = {name: value.to(device) for name, value in _extra_inputs(training_inputs(model), image, mask).items()}

    def forward_backward(precision: str) -> dict[str, Any]:
        times = []
        for _ in range(2):  # the first pass pays for kernel selection and lazy initialisation
            model.zero_grad(set_to_none=True)
            _sync(device)
            _reset_peak(device)
            start = time.perf_counter()
            with _amp(device, precision):
                loss = _probe_loss(model(image, mask, **extras), image)
            loss.backward()
            _sync(device)
            times.append((time.perf_counter() - start) * 1000)
        trainable = [p for p in model.parameters() if p.requires_grad]
        grads = [p.grad for p in trainable if p.grad is not None]
        finite = bool(torch.isfinite(loss)) and _all_finite(grads)
        if not finite:
            problems.append(f"non-finite loss or gradient under {precision}")
        return {
            "fwd_bwd_ms": round(times[-1], 2),
            "first_fwd_bwd_ms": round(times[0], 2),
            "loss": loss.item(),
            "finite": finite,
            "params_without_grad": len(trainable) - len(grads),
            "peak_memory_mib": _peak_mib(device),
        }

    for precision in ("fp32", "bf16"):
        result[precision] = _attempt(problems, f"{precision} forward+backward", lambda p=precision: forward_backward(p))
    result["problems"] = problems
    return result


def part_bench(part: Part, plan: Plan, work: Path) -> None:
    _require_device(plan)
    _require_data(plan)
    for name in plan.bench_models:
        part.item(name, lambda name=name: bench_model(part.report, plan, name, work), need_s=5 if plan.smoke else 8)


def recipe_overrides(plan: Plan, preset: str) -> list[str]:
    """--set values that point a preset at this run's data (and at a random VGG16: no weights offline)."""
    from ..presets import get_preset

    cfg = get_preset(preset)
    sets = []
    if plan.data is not None:
        sets.append(f"data.root={plan.data / 'train_images.txt'}")
        if not cfg.masks.source:
            sets.append(f"masks.source={plan.data / 'train_masks.txt'}")
    elif not cfg.masks.source:
        sets.append("masks.source=strokes")
    if (cfg.loss.perceptual > 0 or cfg.loss.style > 0) and cfg.loss.vgg_weights is None and plan.vgg_weights:
        sets.append(f"loss.vgg_weights={plan.vgg_weights}")
    return sets


def _model_recipe(plan: Plan, name: str) -> tuple[str, list[str]]:
    preset, extra = RECIPES.get(name, (plan.default_preset, (f"model.name={name}",)))
    return preset, [*extra, *recipe_overrides(plan, preset)]


def _timed(model, size: int, device: str, precision: str, warmup: int, repeats: int) -> Callable[[int], list[float]]:
    from ..bench import bench_inputs

    def run(batch: int) -> list[float]:
        image, mask = bench_inputs(size, batch, device)
        times = []
        with torch.inference_mode(), _amp(device, precision):
            for i in range(warmup + repeats):
                _sync(device)
                start = time.perf_counter()
                model(image, mask)
                _sync(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
        return times

    return run


def bench_model(report: Report, plan: Plan, name: str, work: Path) -> dict[str, Any]:
    """`inpaintlab bench` (MACs, fp32 GPU latency/throughput), our fp32/bf16 latency, bf16 throughput in the
    memory budget, and `inpaintlab bench --train` (fp32 and bf16 training steps with D); each stage guarded."""
    from ..models import create_model

    result: dict[str, Any] = {"paper": PAPER_FIGURES.get(name)}
    problems: list[str] = []
    path = work / "bench" / f"{name}.json"

    def cli_bench() -> dict[str, Any]:
        run_cli(
            report,
            f"bench {name}",
            [
                "bench",
                "--model",
                name,
                "--size",
                str(plan.size),
                "--device",
                plan.device,
                "--repeats",
                str(plan.cli_repeats),
                "--throughput-batch",
                str(plan.throughput_batch),
                "--json",
                str(path),
            ],
        )
        cli = json.loads(path.read_text())
        row = {
            "params": cli["params"]["total"],
            "true_gmacs": cli["true_macs"]["total"] / 1e9,
            "thop_gmacs": cli["thop_macs"]["total"] / 1e9,
            "cpu_latency_ms": cli["cpu_latency"]["median_ms"],
        }
        if "gpu" in cli:
            g = cli["gpu"]
            row.update(
                gpu_latency_ms=g["latency"]["median_ms"],
                gpu_latency_peak_mib=g["latency"]["peak_memory_mib"],
                fp32_throughput=g["throughput"]["images_per_s"],
                fp32_throughput_batch=g["throughput"]["batch"],
                fp32_throughput_peak_mib=g["throughput"]["peak_memory_mib"],
            )
        return row

    result["cli"] = _attempt(problems, "inpaintlab bench", cli_bench)
    torch.manual_seed(0)
    model = create_model(name).to(plan.device).eval()

    def latency(precision: str) -> dict[str, Any]:
        _reset_peak(plan.device)
        times = _timed(model, plan.size, plan.device, precision, 3, plan.bench_repeats)(1)
        return {
            "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)),
            "peak_memory_mib": _peak_mib(plan.device),
            "repeats": len(times),
        }

    for precision in ("fp32", "bf16"):
        result[f"latency_{precision}"] = _attempt(problems, f"{precision} latency", lambda p=precision: latency(p))
    result["throughput_bf16"] = _attempt(
        problems,
        "bf16 throughput",
        lambda: _throughput_search(
            _timed(model, plan.size, plan.device, "bf16", 1, 3),
            plan.device,
            plan.memory_budget_mib,
            plan.batch_cap,
            plan.throughput_batch,
        ),
    )
    model = None  # free the GPU before the training-step benchmark builds its own
    _free_memory()
    preset, sets = _model_recipe(plan, name)
    path_train = work / "bench" / f"{name}_train.json"

    def train_step() -> dict[str, Any]:
        run_cli(
            report,
            f"bench --train {name}",
            [
                "bench",
                "--train",
                preset,
                *_sets(sets),
                "--variants",
                "fp32,bf16" if plan.train_amp == "bf16" else "fp32",
                "--steps",
                str(plan.train_bench_steps),
                "--device",
                plan.device,
                "--json",
                str(path_train),
            ],
        )
        train = json.loads(path_train.read_text())
        for variant, row in train["variants"].items():
            if "error" in row:
                problems.append(f"training step {variant}: {row['error']}")
        return {
            "preset": preset,
            "overrides": sets,
            "batch": train["batch"],
            "size": train["size"],
            "variants": train["variants"],
        }

    result["train_step"] = _attempt(problems, "training step", train_step)
    result["problems"] = problems
    return result


def _sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]

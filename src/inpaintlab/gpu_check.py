"""One prepared GPU run: every CUDA path of inpaintlab proven and measured in one command (docs/gpu.md).

    PYTHONPATH=src python3 -m inpaintlab.gpu_check OUT_DIR            # one GPU, about 7.5 minutes
    PYTHONPATH=src python3 -m inpaintlab.gpu_check OUT_DIR --smoke    # CPU, tiny models (CI runs this)
    PYTHONPATH=src python3 -m inpaintlab.gpu_check prepare-data gpu_data --dataset ../shared/datasets

Five parts, each timed and guarded: a failure is recorded with its reason and the rest still runs.
1. ``environment``: torch, CUDA, cuDNN, NCCL, the GPU and its memory.
2. ``contract``: every full-size generator (and the shipped default) runs forward and backward at 256x256 in
   fp32 and under bf16 autocast; outputs and gradients finite; noise inside the hole does not change the
   output (the generator contract); the fp32 vs bf16 difference of the prediction inside the hole.
3. ``bench``: ``inpaintlab bench --device cuda`` per model (MACs, fp32 latency and throughput), plus batch-1
   latency in fp32 and bf16, bf16 throughput at the largest batch that fits a fixed memory budget, peak
   memory, and images/s of a full training step with D (``inpaintlab bench --train PRESET``).
4. ``train``: each paper preset at full size on real photos with ``--amp bf16``: 20 steps with a checkpoint
   at step 10, a second run resumed from that checkpoint to step 20 (its losses compared with the first
   run's), ``inpaintlab eval`` of the resumed checkpoint on held-out photos and masks; then the same under
   ``torchrun --nproc_per_node 1`` over NCCL (the process group, an all-reduce and a DDP step are checked).
5. ``continue_default``: with the time left, the shipped default model continues training from its shipped
   weights at a large batch; both are evaluated on the held-out split, and the new weights (shipped format)
   come back only when they improve the held-out PSNR.

Output folder: ``gpu_report.json`` (every number, rewritten after each item, so a killed run still leaves
one), ``gpu_report.md`` (the tables for docs/results.md), ``gpu_log.txt`` (the tail of every command's
output) and, from part 5 only when better, ``<model>.safetensors`` + ``<model>.json``: at most 8 files,
each under 16 MB. Run folders, checkpoints and eval reports live in a work folder outside it, deleted at
the end (``--keep-work`` keeps it).

``--smoke`` runs the same code paths on CPU with the ``*_tiny`` models at 64x64, built-in photos and
generated masks, a few steps, gloo instead of NCCL; only the CUDA-only lines (memory statistics, the
memory-budget batch search, NCCL) take their CPU branch, and those live in the small ``_cuda_*`` helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import hashlib
import io
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

SRC_DIR = Path(__file__).resolve().parent.parent  # the folder holding the package (``src``)
REPORT_JSON, REPORT_MD, LOG_TXT = "gpu_report.json", "gpu_report.md", "gpu_log.txt"
MAX_OUT_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
_LOG_LIMIT = 6 * 2**20  # gpu_log.txt stays well under MAX_FILE_BYTES

# The generators of part 2/3 (issue 14), in this order; the shipped default model is appended.
FULL_MODELS = (
    "lgnet",
    "lgnet_light",
    "lgnet_share",
    "msanet",
    "pconv_unet",
    "srpnet",
    "pennet",
    "cstfnet",
    "unet15",
    "unet_cicm",
    "lgnet_cicm",
    "msanet_cicm",
)
SMOKE_MODELS = ("lgnet_tiny", "msanet_tiny", "cstfnet_tiny", "unet_cicm_tiny")
# One paper preset per paper/model family (part 4).
PAPER_PRESETS = (
    "lgnet_places2",
    "msanet_places2",
    "pconv_unet_places2",
    "srpnet_places2",
    "pennet_places2",
    "cstfnet_places2",
    "unet_cicm_places2",
)
SMOKE_PRESETS = ("lgnet_tiny_builtin",)
# The training recipe used for a model's training-step benchmark: (preset, extra --set overrides).
RECIPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lgnet": ("lgnet_places2", ()),
    "lgnet_light": ("lgnet_places2", ("model.name=lgnet_light",)),
    "lgnet_share": ("lgnet_places2", ("model.name=lgnet_share",)),
    "msanet": ("msanet_places2", ()),
    "pconv_unet": ("pconv_unet_places2", ()),
    "srpnet": ("srpnet_places2", ()),
    "pennet": ("pennet_places2", ()),
    "cstfnet": ("cstfnet_places2", ()),
    "unet15": ("unet_cicm_places2", ("model.name=unet15", "loss.aux={}")),
    "unet_cicm": ("unet_cicm_places2", ()),
    "lgnet_cicm": ("unet_cicm_places2", ("model.name=lgnet_cicm",)),
    "msanet_cicm": ("unet_cicm_places2", ("model.name=msanet_cicm",)),
    "lgnet_compact": ("lgnet_compact_cpu", ()),
    "lgnet_tiny": ("lgnet_tiny_builtin", ()),
    "msanet_tiny": ("msanet_tiny_builtin", ()),
    "pconv_unet_tiny": ("msanet_tiny_builtin", ("model.name=pconv_unet_tiny",)),
    "srpnet_tiny": ("srpnet_tiny_builtin", ()),
    "pennet_tiny": ("pennet_tiny_builtin", ()),
    "cstfnet_tiny": ("cstfnet_tiny_builtin", ()),
    "unet15_tiny": ("unet15_tiny_builtin", ()),
    "unet_cicm_tiny": ("unet_cicm_tiny_builtin", ()),
    "lgnet_cicm_tiny": ("unet_cicm_tiny_builtin", ("model.name=lgnet_cicm_tiny",)),
    "msanet_cicm_tiny": ("unet_cicm_tiny_builtin", ("model.name=msanet_cicm_tiny",)),
}
# Published figures put next to ours (part 3).
PAPER_FIGURES = {
    "lgnet": "13.59 ms per 256x256 image at inference, TITAN RTX (LGNet, Sec. IV)",
    "msanet": "67.5 ms per training image, Titan Xp (MSA-Net, Table 5)",
}


@dataclasses.dataclass
class Plan:
    """Everything that differs between the GPU run and the CPU smoke run."""

    smoke: bool
    device: str
    size: int
    batch: int  # part 2 batch
    models: tuple[str, ...]
    bench_models: tuple[str, ...]
    default_model: str
    default_preset: str
    bench_repeats: int  # our own latency runs
    cli_repeats: int  # `inpaintlab bench --repeats` (CPU latency runs too: kept small)
    throughput_batch: int  # `inpaintlab bench --throughput-batch` (fp32)
    memory_budget_mib: float
    batch_cap: int
    train_bench_steps: int
    presets: tuple[str, ...]
    torchrun_preset: str
    probe_model: str
    train_steps: int
    eval_images: int
    continue_batch: int
    continue_lr: float
    worker_timeout: float  # one preset's train/resume/eval process, or the torchrun one
    data_workers: int  # part 5 data loader workers (the CPU recipe of the default model has 0)
    budgets: dict[str, float]
    total_s: float
    data: Path | None
    vgg_weights: str = "random"

    @property
    def images(self) -> str:
        return str(self.data / "heldout_images.txt") if self.data else "builtin"

    @property
    def masks_small(self) -> str:
        return str(self.data / "heldout_masks_small.txt") if self.data else "bins"

    @property
    def masks_all(self) -> str:
        return str(self.data / "heldout_masks.txt") if self.data else "bins"


def make_plan(args: argparse.Namespace) -> Plan:
    default_model = args.default_model or _pretrained_default() or "lgnet_compact"
    if args.smoke:
        return Plan(
            smoke=True,
            device="cpu",
            size=64,
            batch=2,
            models=SMOKE_MODELS,
            bench_models=SMOKE_MODELS[:2],
            default_model=args.default_model or "lgnet_tiny",
            default_preset="lgnet_tiny_builtin",
            bench_repeats=2,
            cli_repeats=1,
            throughput_batch=2,
            memory_budget_mib=0.0,
            batch_cap=2,
            train_bench_steps=1,
            presets=SMOKE_PRESETS[: args.max_presets],
            torchrun_preset="lgnet_tiny_builtin",
            probe_model="lgnet_tiny",
            train_steps=4,
            eval_images=4,
            continue_batch=4,
            continue_lr=1e-4,
            worker_timeout=120,
            data_workers=0,
            budgets={"environment": 20, "contract": 60, "bench": 90, "train": 150},
            total_s=args.budget_s or 420,
            data=Path(args.data).resolve() if args.data else None,
        )
    # the two papers with published speed figures and the shipped default first: a tight budget cuts the tail
    models = tuple(dict.fromkeys(("lgnet", "msanet", default_model, *FULL_MODELS)))[: args.max_models]
    return Plan(
        smoke=False,
        device="cuda",
        size=256,
        batch=2,
        models=models,
        bench_models=models,
        default_model=default_model,
        default_preset=args.default_preset,
        bench_repeats=20,
        cli_repeats=1,
        throughput_batch=16,
        memory_budget_mib=args.memory_budget_gib * 1024,
        batch_cap=512,
        train_bench_steps=3,
        presets=PAPER_PRESETS[: args.max_presets],
        torchrun_preset="lgnet_places2",
        probe_model="lgnet_tiny",
        train_steps=20,
        eval_images=8,
        continue_batch=args.continue_batch,
        continue_lr=args.continue_lr,
        worker_timeout=90,
        data_workers=12,
        budgets={"environment": 15, "contract": 60, "bench": 150, "train": 155},
        total_s=args.budget_s or 450,
        data=Path(args.data or "gpu_data").resolve(),
    )


def _pretrained_default() -> str | None:
    try:
        from . import pretrained
    except Exception:  # noqa: BLE001 - the module may not exist (yet): the caller falls back
        return None
    return getattr(pretrained, "DEFAULT_MODEL", None)


# =============================================================================== report and guards


_TRACEBACKS: list[str] = []  # stage failures caught inside an item (``_attempt``), logged by ``Part.item``


class Skip(Exception):
    """An item or part that cannot run here; the message is the reason recorded in the report."""


class Report:
    """The JSON report and Markdown summary, rewritten after every item; the log file, appended."""

    def __init__(self, out: Path, plan: Plan, argv: list[str]):
        self.out, self.plan = out, plan
        self.started = time.time()
        self.data: dict[str, Any] = {
            "tool": "inpaintlab.gpu_check",
            "mode": "smoke" if plan.smoke else "gpu",
            "argv": argv,
            "started": _now(),
            "finished": None,
            "wall_s": None,
            "budget_s": plan.total_s,
            "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(plan).items()},
            "parts": {},
            "failures": [],
        }
        self._log_bytes = 0

    def log(self, title: str, text: str) -> None:
        text = text if len(text) <= 20_000 else "[...]\n" + text[-20_000:]
        entry = f"\n===== {_now()} {title}\n{text.rstrip()}\n"
        if self._log_bytes + len(entry) > _LOG_LIMIT:
            return
        self._log_bytes += len(entry)
        with open(self.out / LOG_TXT, "a", encoding="utf-8") as fh:
            fh.write(entry)

    def save(self, final: bool = False) -> None:
        self.data["wall_s"] = round(time.time() - self.started, 1)
        if final:
            self.data["finished"] = _now()
        _atomic_write(self.out / REPORT_JSON, _strict_json(self.data))
        try:
            _atomic_write(self.out / REPORT_MD, markdown_summary(self.data))
        except Exception as err:  # noqa: BLE001 - a summary bug must not lose the JSON
            self.log("markdown summary failed", traceback.format_exc())
            _atomic_write(self.out / REPORT_MD, f"# GPU check\n\nsummary failed: {err!r}; see {REPORT_JSON}\n")


class Part:
    """One part of the run: its deadline, its items (each guarded) and its status."""

    def __init__(self, report: Report, key: str, title: str, deadline: float):
        self.report, self.key, self.deadline = report, key, deadline
        self.start = time.time()
        self.record: dict[str, Any] = {
            "title": title,
            "status": "running",
            "seconds": None,
            "budget_s": round(deadline - self.start, 1),
            "items": {},
        }
        report.data["parts"][key] = self.record

    def left(self) -> float:
        return self.deadline - time.time()

    def item(self, name: str, fn: Callable[[], dict[str, Any]], need_s: float = 0.0) -> dict[str, Any] | None:
        """Run ``fn`` guarded: its dict becomes the item's result; ``problems`` in it mark the item failed."""
        entry: dict[str, Any] = {"status": "running"}
        self.record["items"][name] = entry
        if self.left() < need_s:
            entry.update(
                status="skipped",
                reason=f"time budget: {max(self.left(), 0):.0f} s left in this part, about {need_s:.0f} s needed",
            )
            self.report.save()
            return None
        start = time.time()
        try:
            result = fn()
            problems = result.pop("problems", [])
            entry.update(result)
            entry["status"] = "failed" if problems else "ok"
            if problems:
                entry["error"] = "; ".join(problems)
                self.report.data["failures"].append(f"{self.key}/{name}: {entry['error']}")
        except Skip as why:
            entry.update(status="skipped", reason=str(why))
            result = None
        except Exception as err:  # noqa: BLE001 - the point of the guard
            entry.update(status="failed", error=_one_line(err))
            self.report.data["failures"].append(f"{self.key}/{name}: {entry['error']}")
            self.report.log(f"{self.key}/{name} failed", traceback.format_exc())
            result = None
        finally:
            entry["seconds"] = round(time.time() - start, 2)
            while _TRACEBACKS:
                self.report.log(f"{self.key}/{name}: stage failed", _TRACEBACKS.pop(0))
            _free_memory()
            self.report.save()
        return entry if entry["status"] == "ok" else None

    def finish(self, error: str | None = None) -> None:
        statuses = [item["status"] for item in self.record["items"].values()]
        if error:
            status = "failed"
            self.record["error"] = error
        elif not statuses:
            status = "skipped"
        elif all(s == "ok" for s in statuses):
            status = "ok"
        elif all(s == "skipped" for s in statuses):
            status = "skipped"
        elif any(s == "ok" for s in statuses):
            status = "partial"
        else:
            status = "failed"
        self.record.update(status=status, seconds=round(time.time() - self.start, 2))
        self.report.save()


def run_part(report: Report, key: str, title: str, deadline: float, body: Callable[[Part], None]) -> Part:
    part = Part(report, key, title, deadline)
    report.log(f"part {key} ({part.record['budget_s']} s)", title)
    try:
        body(part)
        part.finish()
    except Skip as why:
        part.record["reason"] = str(why)
        part.finish()
        part.record["status"] = "skipped"
        report.save()
    except Exception as err:  # noqa: BLE001
        report.data["failures"].append(f"{key}: {_one_line(err)}")
        report.log(f"part {key} failed", traceback.format_exc())
        part.finish(_one_line(err))
    return part


# =============================================================================== processes


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_process(report: Report, title: str, argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``argv`` in its own process group with a timeout (the whole group is killed); output -> log."""
    start = time.time()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=_child_env(), start_new_session=True, cwd=str(SRC_DIR.parent)
        )
        try:
            rc: int | str = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
        out.seek(0)
        text = out.read()
    seconds = round(time.time() - start, 2)
    report.log(f"{title}: rc={rc} in {seconds} s: {' '.join(argv)}", text)
    return {"rc": rc, "seconds": seconds, "tail": _error_tail(text) if rc != 0 else ""}


def run_cli(report: Report, title: str, argv: list[str]) -> str:
    """``inpaintlab <argv>`` in this process (the console script's own ``main``); raises on failure."""
    from .cli import main as cli_main

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                rc = cli_main(argv)
            except SystemExit as stop:  # argparse
                rc = stop.code
    except BaseException:
        report.log(f"{title}: inpaintlab {' '.join(argv)} raised", buffer.getvalue() + traceback.format_exc())
        raise
    text = buffer.getvalue()
    report.log(f"{title}: inpaintlab {' '.join(argv)} -> {rc}", text)
    if rc != 0:
        raise RuntimeError(f"inpaintlab {argv[0]} exited {rc}: {_error_tail(text)}")
    return text


def _worker_argv(spec: Path) -> list[str]:
    return [sys.executable, "-m", "inpaintlab.gpu_check", "--worker", str(spec)]


def worker(spec_path: str) -> int:
    """Child process of part 4: optional process-group probe (torchrun), then CLI commands in order."""
    spec = json.loads(Path(spec_path).read_text())
    result: dict[str, Any] = {"steps": {}, "distributed": None}
    save = lambda: Path(spec["result"]).write_text(json.dumps(result))  # noqa: E731
    ok = True
    if spec.get("distributed"):  # a failed probe is reported; the CLI steps still run (as one plain process)
        try:
            result["distributed"] = _distributed_probe(spec["device"], spec["probe_model"])
            ok = result["distributed"]["all_reduce_ok"] and result["distributed"]["ddp_step_ok"]
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            result["distributed"] = {"error": _one_line(err)}
            ok = False
        save()
    from .cli import main as cli_main

    for step in spec["steps"]:
        start = time.time()
        print(f"##### gpu_check worker: inpaintlab {' '.join(step['argv'])}", flush=True)
        try:
            rc = cli_main(step["argv"])
        except SystemExit as stop:
            rc = stop.code
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            rc = _one_line(err)
        result["steps"][step["name"]] = {"rc": rc, "seconds": round(time.time() - start, 2)}
        save()
        if rc != 0:
            ok = False
            break
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    save()
    return 0 if ok else 1


def _distributed_probe(device: str, probe_model: str) -> dict[str, Any]:
    """Under torchrun: join the group (NCCL on CUDA, gloo on CPU), all-reduce, one DDP step of ``probe_model``."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from .bench import bench_inputs
    from .models import create_model

    start = time.time()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _cuda_device(local_rank) if device == "cuda" else torch.device("cpu")
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    value = torch.full((8,), float(rank + 1), device=dev)
    dist.all_reduce(value)
    all_reduce_ok = bool((value == world * (world + 1) / 2).all().item())
    dist.barrier()
    torch.manual_seed(0)
    model = create_model(probe_model).to(dev)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device == "cuda" else None)
    image, mask = bench_inputs(max(model.size_multiple, 64), 2, dev)
    loss = (ddp(image, mask).pred - image).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {
        "backend": str(dist.get_backend()),
        "world_size": world,
        "rank": rank,
        "all_reduce_ok": all_reduce_ok,
        "ddp_step_ok": bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads),
        "ddp_model": probe_model,
        "nccl_version": _cuda_nccl_version() if device == "cuda" else None,
        "seconds": round(time.time() - start, 2),
    }


# =============================================================================== CUDA-only lines
# Everything that only a GPU can run is in these helpers; a CPU run takes the ``device != "cuda"`` branch.


def _cuda_device(index: int) -> torch.device:
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cuda_nccl_version() -> str | None:
    with contextlib.suppress(Exception):
        version = torch.cuda.nccl.version()
        return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    return None


def _cuda_environment() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    env = {
        "device_count": torch.cuda.device_count(),
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 2),
        "multiprocessors": props.multi_processor_count,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "nccl": _cuda_nccl_version(),
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    start = time.time()
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    a @ a  # cuBLAS initialisation outside the timed loop
    torch.cuda.synchronize()
    env["first_kernels_s"] = round(time.time() - start, 3)
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    env["bf16_matmul_tflops"] = round(10 * 2 * 4096**3 / (time.perf_counter() - start) / 1e12, 1)
    with contextlib.suppress(Exception):
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    return env


def _throughput_search(
    run: Callable[[int], list[float]], device: str, budget_mib: float, cap: int, cpu_batch: int
) -> dict[str, Any]:
    """bf16 throughput at the largest batch whose peak memory stays inside ``budget_mib`` (CUDA).

    The peaks at batch 1 and 2 give memory per image; the predicted batch is measured and shrunk until
    its peak fits (an OOM halves it). On CPU: the fixed ``cpu_batch``, no memory numbers.
    """
    if device != "cuda":
        times = run(cpu_batch)
        return {
            "batch": cpu_batch,
            "images_per_s": cpu_batch / (float(np.median(times)) / 1000),
            "peak_memory_mib": None,
            "budget_mib": None,
            "note": "CPU: fixed batch, no memory budget",
        }
    peaks = {}
    for b in (1, 2):
        torch.cuda.reset_peak_memory_stats()
        run(b)
        peaks[b] = torch.cuda.max_memory_allocated() / 2**20
    per_image = max(peaks[2] - peaks[1], 1.0)
    batch = int(max(1, min(cap, (budget_mib - (peaks[1] - per_image)) // per_image)))
    batch = batch - batch % 8 if batch >= 16 else batch
    tried = []
    for _ in range(6):
        try:
            torch.cuda.reset_peak_memory_stats()
            times = run(batch)
            peak = torch.cuda.max_memory_allocated() / 2**20
            tried.append([batch, round(peak)])
            if peak <= budget_mib or batch == 1:
                return {
                    "batch": batch,
                    "images_per_s": batch / (float(np.median(times)) / 1000),
                    "peak_memory_mib": peak,
                    "budget_mib": budget_mib,
                    "per_image_mib": per_image,
                    "tried": tried,
                }
            batch = max(1, int(batch * budget_mib / peak * 0.95))
        except torch.OutOfMemoryError:
            tried.append([batch, "OOM"])
            torch.cuda.empty_cache()
            batch = max(1, batch // 2)
    raise RuntimeError(f"no batch fitted {budget_mib:.0f} MiB: tried {tried}")


# =============================================================================== part 1: environment


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
    from .version import __version__

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


# =============================================================================== part 2: contract


def part_contract(part: Part, plan: Plan) -> None:
    _require_device(plan)
    for name in plan.models:
        part.item(name, lambda name=name: contract_check(name, plan.size, plan.batch, plan.device), need_s=3)


def _stroke_batch(size: int, batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from .masks import bin_stroke_mask

    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=gen)
    masks = [torch.from_numpy(bin_stroke_mask(size, 2 + b % 3, np.random.default_rng([seed, b])) > 0) for b in range(batch)]
    return image.to(device), torch.stack(masks)[:, None].float().to(device)


def _extra_inputs(names: Sequence[str], image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The extra training inputs ``names`` for the probe batch (image (B,3,S,S), mask (B,1,S,S)), made by the
    data path (``data.EXTRA_INPUTS``) from the batch's own images and masks: a new kind needs nothing here."""
    from .data import ArrayDataset, collate_samples

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
    from .models import create_model
    from .train import training_inputs

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


# =============================================================================== part 3: bench


def part_bench(part: Part, plan: Plan, work: Path) -> None:
    _require_device(plan)
    _require_data(plan)
    for name in plan.bench_models:
        part.item(name, lambda name=name: bench_model(part.report, plan, name, work), need_s=5 if plan.smoke else 8)


def recipe_overrides(plan: Plan, preset: str) -> list[str]:
    """--set values that point a preset at this run's data (and at a random VGG16: no weights offline)."""
    from .presets import get_preset

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
    from .bench import bench_inputs

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
    from .models import create_model

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
                "fp32,bf16",
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


# =============================================================================== part 4: train, resume, eval


def part_train(part: Part, plan: Plan, work: Path) -> None:
    _require_device(plan)
    _require_data(plan)
    need = 10 if plan.smoke else 20
    for k, preset in enumerate(plan.presets):  # torchrun right after the first preset: NCCL before the tail
        part.item(preset, lambda preset=preset: train_preset(part, plan, preset, work), need_s=need)
        if k == 0:
            part.item(f"torchrun:{plan.torchrun_preset}", lambda: torchrun_preset(part, plan, work), need_s=need)


def _train_argv(plan: Plan, preset: str, out: Path, steps: int, extra: list[str]) -> list[str]:
    sets = [
        *recipe_overrides(plan, preset),
        f"max_steps={steps}",
        f"ckpt_every={max(steps // 2, 1)}",
        f"log_every={max(steps // 4, 1)}",
        "data.val_count=0",
        "keep_checkpoints=3",
        *extra,
    ]
    amp = "bf16" if plan.device != "cpu" or cpu_has_bf16() else "none"  # emulated bf16 is ~10x slower than fp32
    return ["train", "--preset", preset, *_sets(sets), "--amp", amp, "--device", plan.device, "--out", str(out)]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere torch emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _eval_argv(plan: Plan, checkpoint: Path, out: Path) -> list[str]:
    return [
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--images",
        plan.images,
        "--masks",
        plan.masks_small,
        "--max-images",
        str(plan.eval_images),
        "--size",
        str(plan.size),
        "--batch-size",
        "8",
        "--device",
        plan.device,
        "--out",
        str(out),
    ]


def _checkpoint(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:08d}.safetensors"


def _metrics_lines(run: Path) -> dict[int, dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {line["step"]: line for line in lines if "g/total" in line}


def _run_worker(part: Part, spec: dict[str, Any], work: Path, tag: str, launcher: list[str], timeout: float) -> dict[str, Any]:
    spec_path = work / f"{tag}_spec.json"
    spec["result"] = str(work / f"{tag}_result.json")
    spec_path.write_text(json.dumps(spec, indent=1))
    argv = [*launcher, *_worker_argv(spec_path)[1:]] if launcher else _worker_argv(spec_path)
    proc = run_process(part.report, tag, argv, timeout=min(part.left(), timeout))
    result_path = Path(spec["result"])
    done = json.loads(result_path.read_text()) if result_path.is_file() else {"steps": {}, "distributed": None}
    return {"process": proc, **done}


def _eval_summary(folder: Path) -> dict[str, Any]:
    report = json.loads((folder / "metrics.json").read_text())
    return {"overall": report["overall"], "bins": report["bins"], "images": report["settings"]["images"]["count"]}


def train_preset(part: Part, plan: Plan, preset: str, work: Path) -> dict[str, Any]:
    steps, half = plan.train_steps, plan.train_steps // 2
    run_a, run_b, evals = work / "train" / preset / "a", work / "train" / preset / "b", work / "train" / preset / "eval"
    spec = {
        "device": plan.device,
        "steps": [
            {"name": "train", "argv": _train_argv(plan, preset, run_a, steps, [])},
            {"name": "resume", "argv": _train_argv(plan, preset, run_b, steps, []) + ["--resume", str(_checkpoint(run_a, half))]},
            {"name": "eval", "argv": _eval_argv(plan, _checkpoint(run_b, steps), evals)},
        ],
    }
    done = _run_worker(part, spec, work, f"train_{preset}", [], plan.worker_timeout)
    result: dict[str, Any] = {"steps": done["steps"], "seconds_process": done["process"]["seconds"]}
    problems = _step_problems(spec, done)
    logs_a, logs_b = _metrics_lines(run_a), _metrics_lines(run_b)
    if logs_a:
        last = logs_a[max(logs_a)]
        result["train"] = {
            "last_step": max(logs_a),
            "g_total": last["g/total"],
            "images_per_s": last.get("images_per_s"),
            "checkpoint_mib": _mib(_checkpoint(run_a, steps)),
        }
    if logs_a and logs_b:
        common = sorted(set(logs_a) & set(logs_b) - {half})
        result["resume"] = {
            "from_step": half,
            "to_step": max(logs_b),
            "compared_steps": common,
            "g_total_rel_diff": max(
                (abs(logs_a[s]["g/total"] - logs_b[s]["g/total"]) / max(abs(logs_a[s]["g/total"]), 1e-12) for s in common),
                default=None,
            ),
        }
        if max(logs_b) != steps:
            problems.append(f"resumed run stopped at step {max(logs_b)}, expected {steps}")
    if (evals / "metrics.json").is_file():
        result["eval"] = _eval_summary(evals)
    result["problems"] = problems
    return result


def _step_problems(spec: dict[str, Any], done: dict[str, Any]) -> list[str]:
    problems = []
    if done["process"]["rc"] != 0:
        problems.append(f"worker exited {done['process']['rc']}: {done['process']['tail']}")
    for step in spec["steps"]:
        rc = done["steps"].get(step["name"], {}).get("rc", "not run")
        if rc != 0 and not problems:
            problems.append(f"{step['name']}: {rc}")
    return problems


def torchrun_preset(part: Part, plan: Plan, work: Path) -> dict[str, Any]:
    preset, steps = plan.torchrun_preset, max(plan.train_steps // 2, 2)
    run, evals = work / "torchrun" / "run", work / "torchrun" / "eval"
    spec = {
        "device": plan.device,
        "distributed": True,
        "probe_model": plan.probe_model,
        "steps": [
            {"name": "train", "argv": _train_argv(plan, preset, run, steps, [])},
            {"name": "eval", "argv": _eval_argv(plan, _checkpoint(run, steps), evals)},
        ],
    }
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    done = _run_worker(part, spec, work, "torchrun", launcher, plan.worker_timeout)
    result: dict[str, Any] = {
        "preset": preset,
        "distributed": done["distributed"],
        "steps": done["steps"],
        "seconds_process": done["process"]["seconds"],
    }
    problems = _step_problems(spec, done)
    dist_info = done["distributed"] or {}
    if "error" in dist_info:
        problems.insert(0, f"process group: {dist_info['error']}")
    elif dist_info and not (dist_info["all_reduce_ok"] and dist_info["ddp_step_ok"]):
        problems.insert(0, f"process group probe failed: {dist_info}")
    logs = _metrics_lines(run)
    if logs:
        result["train"] = {
            "last_step": max(logs),
            "g_total": logs[max(logs)]["g/total"],
            "images_per_s": logs[max(logs)].get("images_per_s"),
        }
    if (evals / "metrics.json").is_file():
        result["eval"] = _eval_summary(evals)
    result["note"] = (
        "one process: the trainer joins the process group torchrun set up but wraps in DDP only when "
        "WORLD_SIZE > 1; the DDP step is proven by the probe"
    )
    result["problems"] = problems
    return result


# =============================================================================== part 5: continue the default


def part_continue(part: Part, plan: Plan, work: Path, out: Path, args: argparse.Namespace) -> None:
    _require_device(plan)
    _require_data(plan)
    part.item(plan.default_model, lambda: continue_default(part, plan, work, out, args), need_s=15 if plan.smoke else 60)


def _shipped(plan: Plan, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """{name, weights, card, source}: the shipped default's weights (fp16 state dict) and card."""
    name = plan.default_model
    if args.default_weights:
        weights = Path(args.default_weights)
        card_path = weights.with_suffix(".json")
        if not weights.is_file() or not card_path.is_file():
            raise Skip(f"--default-weights {weights}: expected the weights file and its card {card_path.name} beside it")
        return {"name": name, "weights": weights, "card": json.loads(card_path.read_text()), "source": str(weights)}
    if plan.smoke:
        return _smoke_shipped(plan, work)
    try:
        from . import pretrained
    except ImportError as err:
        raise Skip(f"inpaintlab.pretrained is not importable ({err}); pass --default-weights FILE") from None
    if not pretrained.has_weights(name):
        raise Skip(f"no shipped weights for {name} in {pretrained.WEIGHTS_DIR}")
    return {
        "name": name,
        "weights": pretrained.WEIGHTS_DIR / f"{name}.safetensors",
        "card": pretrained.model_card(name),
        "source": f"inpaintlab/weights/{name}.safetensors",
    }


def _smoke_shipped(plan: Plan, work: Path) -> dict[str, Any]:
    """Smoke stand-in for shipped weights: part 4's resumed checkpoint of the default preset, shipped format."""
    from .checkpoint import load_checkpoint, sub_state

    source = _checkpoint(work / "train" / plan.default_preset / "b", plan.train_steps)
    if not source.is_file():
        raise Skip(f"smoke: no checkpoint of {plan.default_preset} from part 4 to stand in for shipped weights")
    tensors, header = load_checkpoint(source, prefixes=("generator_ema", "generator"))
    state = sub_state(tensors, "generator_ema") or sub_state(tensors, "generator")
    folder = work / "smoke_shipped"
    folder.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(folder / "w.safetensors"))
    card = {
        "model": header["model"],
        "step": header["step"],
        "preset": plan.default_preset,
        "note": "smoke stand-in made from part 4's checkpoint",
    }
    return {"name": header["model"]["name"], "weights": folder / "w.safetensors", "card": card, "source": str(source)}


def _as_checkpoint(shipped: dict[str, Any], path: Path) -> Path:
    """The shipped fp16 state dict as an inpaintlab checkpoint (fp32 ``generator.*``) for init_from and eval."""
    from safetensors.torch import load_file

    from .checkpoint import save_checkpoint

    state = load_file(str(shipped["weights"]))
    tensors = {f"generator.{k}": v.float() if v.is_floating_point() else v for k, v in state.items()}
    header = {
        "model": shipped["card"]["model"],
        "step": shipped["card"].get("step", 0),
        "note": f"shipped weights {shipped['source']} as a checkpoint",
    }
    return save_checkpoint(path, tensors, header)


def continue_default(part: Part, plan: Plan, work: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    shipped = _shipped(plan, args, work)
    name, card = shipped["name"], shipped["card"]
    folder = work / "continue"
    init = _as_checkpoint(shipped, folder / "shipped.safetensors")
    preset = card.get("preset") if card.get("preset") in _preset_names() else RECIPES.get(name, (plan.default_preset,))[0]
    batch = plan.continue_batch
    rate = _measured_rate(part.report, name)
    eval_reserve = 20 if plan.smoke else 35
    train_s = part.left() - eval_reserve
    if train_s < (10 if plan.smoke else 30):
        raise Skip(f"time budget: {part.left():.0f} s left, not enough to train and evaluate")
    overhead = 8 if plan.smoke else 20
    if plan.smoke:
        steps = plan.train_steps
    elif rate:  # measured on one fixed batch (no data loading): only a guide, the timeout is the guard
        steps = max(10, int((train_s - overhead) * 0.6 * rate / batch))
    else:
        steps = 200
    n_train = _count_lines(plan.data / "train_images.txt") if plan.data else None
    per_epoch = max((n_train or batch) // batch, 1)
    epochs = math.ceil(steps / per_epoch)
    sets = [
        *recipe_overrides(plan, preset),
        f"init_from={init}",
        f"batch_size={batch}",
        f"max_steps={steps}",
        f"epochs={epochs}",
        "optim.schedule=linear",
        "optim.epochs_constant=0",
        f"optim.epochs_decay={epochs}",
        f"optim.lr={plan.continue_lr}",
        "data.val_count=0",
        f"ckpt_every={max(steps // 4, 1)}",
        "keep_checkpoints=2",
        f"log_every={max(steps // 10, 1)}",
        f"data.num_workers={plan.data_workers}",
    ]
    run = folder / "run"
    argv = [
        sys.executable,
        "-m",
        "inpaintlab.cli",
        "train",
        "--preset",
        preset,
        *_sets(sets),
        "--amp",
        "bf16",
        "--device",
        plan.device,
        "--out",
        str(run),
    ]
    proc = run_process(part.report, f"continue {name}", argv, timeout=train_s)
    result: dict[str, Any] = {
        "model": name,
        "shipped": shipped["source"],
        "preset": preset,
        "batch": batch,
        "planned_steps": steps,
        "lr": plan.continue_lr,
        "schedule": "linear decay to 0",
        "rate_estimate_images_per_s": rate,
        "train": {"rc": proc["rc"], "seconds": proc["seconds"]},
    }
    checkpoints = sorted((run / "checkpoints").glob("step_*.safetensors"))
    if not checkpoints:
        raise RuntimeError(f"training wrote no checkpoint (rc {proc['rc']}): {proc['tail']}")
    newest = checkpoints[-1]
    logs = _metrics_lines(run)
    result["train"].update(
        steps=int(newest.stem.split("_")[1]),
        images_per_s=logs[max(logs)].get("images_per_s") if logs else None,
        g_total_first=logs[min(logs)]["g/total"] if logs else None,
        g_total_last=logs[max(logs)]["g/total"] if logs else None,
    )
    evals = folder / "eval"
    eval_argv = [
        sys.executable,
        "-m",
        "inpaintlab.cli",
        "eval",
        "--checkpoint",
        str(init),
        "--checkpoint",
        str(newest),
        "--images",
        plan.images,
        "--masks",
        plan.masks_all,
        "--size",
        str(_inference_size(card, plan.size)),
        "--batch-size",
        "32",
        "--device",
        plan.device,
        "--out",
        str(evals),
    ]
    if plan.smoke:
        eval_argv += ["--max-images", str(plan.eval_images)]
    done = run_process(part.report, f"eval {name}: shipped vs continued", eval_argv, timeout=max(part.left(), 10))
    if done["rc"] != 0:
        raise RuntimeError(f"eval exited {done['rc']}: {done['tail']}")
    before, after = _eval_summary(evals / "shipped"), _eval_summary(evals / newest.stem)
    improved = after["overall"]["psnr"] > before["overall"]["psnr"]
    result.update(
        shipped_eval=before,
        continued_eval=after,
        improved=improved,
        psnr_gain_db=after["overall"]["psnr"] - before["overall"]["psnr"],
    )
    if improved:
        result["returned"] = _return_weights(newest, out, card, result, argv)
    else:
        result["returned"] = None
        result["note"] = "held-out PSNR did not improve: the weights were not brought back"
    result["problems"] = []
    return result


def _inference_size(card: dict[str, Any], default: int) -> int:
    size = card.get("inference_size")
    return size if isinstance(size, int) and size > 0 else default


def _preset_names() -> set[str]:
    from .presets import PRESETS

    return set(PRESETS)


def _measured_rate(report: Report, name: str) -> float | None:
    """bf16 training images/s of ``name`` from part 3, if measured."""
    item = report.data["parts"].get("bench", {}).get("items", {}).get(name, {})
    row = item.get("train_step", {}).get("variants", {}).get("bf16", {})
    return row.get("images_per_s")


def _return_weights(checkpoint: Path, out: Path, card: dict[str, Any], result: dict[str, Any], argv: list[str]) -> list[str]:
    """Write the improved EMA generator in the shipped format (fp16 + card) into the output folder."""
    from safetensors.torch import save_file

    from .checkpoint import load_checkpoint, sub_state

    tensors, header = load_checkpoint(checkpoint, prefixes=("generator_ema", "generator"))
    state = sub_state(tensors, "generator_ema") or sub_state(tensors, "generator")
    name = header["model"]["name"]
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    weights = out / f"{name}.safetensors"
    save_file(half, str(weights))
    if weights.stat().st_size >= MAX_FILE_BYTES:
        weights.unlink()
        raise RuntimeError(f"{name} weights are {weights.stat().st_size / 2**20:.1f} MiB in fp16: over the 16 MB limit")
    new_card = {
        **card,
        "step": card.get("step", 0),
        "model": header["model"],
        "weights": {"file": weights.name, "dtype": "float16", "ema": bool(sub_state(tensors, "generator_ema"))},
        "gpu_continuation": {
            "steps": result["train"]["steps"],
            "batch": result["batch"],
            "lr": result["lr"],
            "seconds": result["train"]["seconds"],
            "command": " ".join(argv[1:]),
            "heldout_before": result["shipped_eval"]["overall"],
            "heldout_after": result["continued_eval"]["overall"],
            "date": _now(),
        },
    }
    (out / f"{name}.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return [weights.name, f"{name}.json"]


# =============================================================================== summary


def markdown_summary(data: dict[str, Any]) -> str:
    parts = data["parts"]
    lines = [
        f"# inpaintlab GPU check ({data['mode']})",
        "",
        f"Started {data['started']}, {data['wall_s']} s of a {data['budget_s']} s budget. Command: `{' '.join(data['argv'])}`.",
        "",
    ]
    lines += ["| part | status | seconds | budget s | note |", "|---|---|---:|---:|---|"]
    for key, part in parts.items():
        note = part.get("reason") or part.get("error") or ""
        lines.append(f"| {key} | {part['status']} | {part['seconds']} | {part['budget_s']} | {note} |")
    env = parts.get("environment", {}).get("items", {}).get("environment", {}).get("environment")
    if env:
        gpu = env.get("gpu", {})
        lines += [
            "",
            "## Environment",
            "",
            f"torch {env['torch']} (CUDA {env['torch_cuda']}), Python {env['python']}, {env['cpu_count']} CPUs, "
            f"inpaintlab {env['inpaintlab']} at {env['git']}; data: {json.dumps(env['data'])}.",
        ]
        if gpu:
            lines.append(
                f"GPU: {gpu['name']} ({gpu['memory_gib']} GiB, capability {gpu['capability']}), cuDNN "
                f"{gpu['cudnn']}, NCCL {gpu['nccl']}, TF32 convolutions {gpu['tf32_cudnn']}, bf16 matmul "
                f"{gpu['bf16_matmul_tflops']} TFLOP/s; nvidia-smi: {gpu.get('nvidia_smi')}."
            )
    lines += _contract_table(parts.get("contract"))
    lines += _bench_table(parts.get("bench"))
    lines += _train_table(parts.get("train"), data)
    lines += _continue_section(parts.get("continue_default"))
    lines += ["", "## Failures", ""] + ([f"- {f}" for f in data["failures"]] or ["none"])
    return "\n".join(lines) + "\n"


def _items(part: dict[str, Any] | None) -> dict[str, Any]:
    return (part or {}).get("items", {})


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.1e}"
    return str(value)


def _status_cell(item: dict[str, Any]) -> str:
    return "ok" if item["status"] == "ok" else f"{item['status']}: {item.get('error') or item.get('reason', '')}"


def _contract_table(part: dict[str, Any] | None) -> list[str]:
    if not _items(part):
        return []
    lines = [
        "",
        "## Forward + backward (contract, fp32 vs bf16)",
        "",
        "| model | params | fp32 fwd+bwd ms | bf16 fwd+bwd ms | fp32 peak MiB | bf16 peak MiB | hole-noise max diff "
        "| bf16-fp32 in hole: mean / max | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in _items(part).items():
        fp32, bf16 = r.get("fp32") or {}, r.get("bf16") or {}
        lines.append(
            f"| `{name}` | {_f(r.get('params'))} | {_f(fp32.get('fwd_bwd_ms'))} | {_f(bf16.get('fwd_bwd_ms'))} | "
            f"{_f(fp32.get('peak_memory_mib'), 0)} | {_f(bf16.get('peak_memory_mib'), 0)} | "
            f"{_f(r.get('hole_noise_max_abs'), 2)} | {_f(r.get('bf16_vs_fp32_hole_mean_abs'), 4)} / "
            f"{_f(r.get('bf16_vs_fp32_hole_max_abs'), 3)} | {_status_cell(r)} |"
        )
    return lines


def _bench_table(part: dict[str, Any] | None) -> list[str]:
    if not _items(part):
        return []
    lines = [
        "",
        "## Benchmarks (batch-1 latency, bf16 throughput in the memory budget, training step with D)",
        "",
        "| model | true GMACs | latency fp32 ms | latency bf16 ms | bf16 img/s (batch, peak MiB) | fp32 img/s @16 "
        "| train img/s fp32 / bf16 (batch) | ms per training image fp32 / bf16 | paper | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in _items(part).items():
        cli, tp = r.get("cli") or {}, r.get("throughput_bf16") or {}
        train = (r.get("train_step") or {}).get("variants", {})
        ips = [train.get(v, {}).get("images_per_s") for v in ("fp32", "bf16")]
        ms = [None if x is None else 1000 / x for x in ips]
        tp_cell = "–" if not tp else f"{_f(tp.get('images_per_s'))} ({tp.get('batch')}, {_f(tp.get('peak_memory_mib'), 0)})"
        lines.append(
            f"| `{name}` | {_f(cli.get('true_gmacs'), 2)} | {_f((r.get('latency_fp32') or {}).get('median_ms'), 2)} | "
            f"{_f((r.get('latency_bf16') or {}).get('median_ms'), 2)} | {tp_cell} | {_f(cli.get('fp32_throughput'))} | "
            f"{_f(ips[0])} / {_f(ips[1])} ({(r.get('train_step') or {}).get('batch', '–')}) | "
            f"{_f(ms[0])} / {_f(ms[1])} | {r.get('paper') or ''} | {_status_cell(r)} |"
        )
    return lines


def _train_table(part: dict[str, Any] | None, data: dict[str, Any]) -> list[str]:
    if not _items(part):
        return []
    steps = data["plan"]["train_steps"]
    lines = [
        "",
        f"## Training: {steps} steps (bf16), resume from step {steps // 2}, eval of the resumed checkpoint",
        "",
        "| preset | last step | img/s (last window) | g/total | resume: max rel. diff of logged losses "
        "| eval PSNR | SSIM | L1 | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in _items(part).items():
        train, resume, ev = r.get("train") or {}, r.get("resume") or {}, (r.get("eval") or {}).get("overall", {})
        lines.append(
            f"| `{name}` | {_f(train.get('last_step'))} | {_f(train.get('images_per_s'))} | "
            f"{_f(train.get('g_total'), 4)} | {_f(resume.get('g_total_rel_diff'), 2)} | {_f(ev.get('psnr'), 2)} | "
            f"{_f(ev.get('ssim'), 4)} | {_f(ev.get('l1'), 3)} | {_status_cell(r)} |"
        )
        if r.get("distributed"):
            lines.append(f"|  ↳ process group | {json.dumps(r['distributed'])} | | | | | | | |")
    return lines


def _continue_section(part: dict[str, Any] | None) -> list[str]:
    items = _items(part)
    if not items:
        return [
            "",
            "## Continue the shipped default",
            "",
            f"{(part or {}).get('status', 'not run')}: {(part or {}).get('reason', '')}",
        ]
    lines = ["", "## Continue the shipped default on the GPU", ""]
    for name, r in items.items():
        if r["status"] != "ok":
            lines.append(f"`{name}`: {_status_cell(r)}")
            continue
        t = r["train"]
        lines += [
            f"`{name}` from {r['shipped']} with preset `{r['preset']}`, batch {r['batch']}, lr {r['lr']} "
            f"({r['schedule']}): {t['steps']} steps in {t['seconds']} s ({_f(t.get('images_per_s'))} img/s).",
            "",
            "| weights | images | L1 | PSNR | SSIM |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, ev in (("shipped", r["shipped_eval"]), ("continued", r["continued_eval"])):
            o = ev["overall"]
            lines.append(f"| {label} | {ev['images']} | {_f(o.get('l1'), 3)} | {_f(o.get('psnr'), 2)} | {_f(o.get('ssim'), 4)} |")
        lines += [
            "",
            f"PSNR gain {r['psnr_gain_db']:+.3f} dB: "
            + (f"weights returned as {', '.join(r['returned'])}." if r["improved"] else "not improved, nothing returned."),
        ]
    return lines


# =============================================================================== data for the GPU run


def prepare_data(
    out: str | Path,
    dataset: str | Path | None = None,
    split: str | Path | None = None,
    n_train: int = 600,
    n_heldout: int = 0,
    n_train_masks: int = 1000,
    masks_per_bin_small: int = 10,
    mask_size: int = 256,
) -> dict[str, Any]:
    """Copy a deterministic subset of the held-out split into ``out`` (git-ignored; it travels with ``carry``).

    The lists of ``inpaintlab split`` (``split`` folder, else made here from ``dataset``) are ordered by the
    SHA-256 of each file's "<folder>/<name>" and the first ``n_train`` training photos, ``n_heldout``
    held-out photos (0 = all), ``n_train_masks`` training masks and all held-out masks are copied; the
    held-out masks are binned (hole ratio at ``mask_size``) and ``masks_per_bin_small`` per bin form the
    quick list. Lists hold paths relative to ``out`` so the folder works wherever it lands:
    ``train_images.txt``, ``heldout_images.txt``, ``train_masks.txt``, ``heldout_masks.txt``,
    ``heldout_masks_small.txt``; ``manifest.json`` records the sources and counts.
    """
    from .errors import InpaintlabError
    from .masks import HOLE_RATIO_BINS, MaskFolder, ratio_bin
    from .splits import make_split

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").is_file():
            raise InpaintlabError(f"{out} exists and is not a gpu_check data folder (no manifest.json); choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        if split is None:
            if dataset is None:
                raise InpaintlabError("give --dataset ROOT (a folder of image and mask folders) or --split DIR")
            make_split(dataset, tmp, size=mask_size, progress=False)
            split = tmp
        split = Path(split)
        lists = {
            k: [Path(p) for p in (split / f"{k}.txt").read_text().split("\n") if p.strip()]
            for k in ("train_images", "heldout_images", "train_masks", "heldout_masks")
        }
        summary = json.loads((split / "split.json").read_text()) if (split / "split.json").is_file() else {}
    order = lambda paths: sorted(paths, key=lambda p: hashlib.sha256(f"{p.parent.name}/{p.name}".encode()).hexdigest())  # noqa: E731
    chosen = {
        "train_images": order(lists["train_images"])[:n_train],
        "heldout_images": order(lists["heldout_images"])[: n_heldout or None],
        "train_masks": order(lists["train_masks"])[:n_train_masks],
        "heldout_masks": order(lists["heldout_masks"]),
    }
    folders = {
        "train_images": "train",
        "heldout_images": "heldout",
        "train_masks": "masks_train",
        "heldout_masks": "masks_heldout",
    }
    written: dict[str, list[str]] = {}
    total = 0
    for key, paths in chosen.items():
        (out / folders[key]).mkdir()
        written[key] = []
        for path in paths:
            relative = f"{folders[key]}/{path.parent.name}__{path.name}"
            shutil.copyfile(path, out / relative)
            total += (out / relative).stat().st_size
            written[key].append(relative)
        (out / f"{key}.txt").write_text("".join(line + "\n" for line in written[key]))
    held = MaskFolder(out / "heldout_masks.txt", mask_size)
    ratios = held.measure_ratios(progress=False)
    small = []
    for k in range(len(HOLE_RATIO_BINS)):
        small += [written["heldout_masks"][i] for i, r in enumerate(ratios) if ratio_bin(r) == k][:masks_per_bin_small]
    (out / "heldout_masks_small.txt").write_text("".join(line + "\n" for line in small))
    manifest = {
        "made": _now(),
        "source": str(dataset) if dataset else summary.get("root"),
        "split_settings": {k: summary.get(k) for k in ("image_fraction", "masks_per_bin", "mask_size")},
        "rule": "each list ordered by SHA-256 of '<folder>/<name>', first N taken",
        "counts": {**{k: len(v) for k, v in written.items()}, "heldout_masks_small": len(small)},
        "bytes": total,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# =============================================================================== main


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:500]


def _error_tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "Error" in line]
    return (errors[-1] if errors else (lines[-1] if lines else ""))[:500]


def _strict_json(data: Any) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return json.dumps(clean(data), indent=1, allow_nan=False) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _mib(path: Path) -> float | None:
    return round(path.stat().st_size / 2**20, 2) if path.is_file() else None


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def output_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def run(args: argparse.Namespace, argv: list[str]) -> int:
    plan = make_plan(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in output_files(out) if p.name not in (REPORT_JSON, REPORT_MD, LOG_TXT)]
    if stale:
        print(f"gpu_check: {out} already holds other files ({stale[0].name}, ...); give an empty folder", file=sys.stderr)
        return 2
    for name in (REPORT_JSON, REPORT_MD, LOG_TXT):
        (out / name).unlink(missing_ok=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="inpaintlab_gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench").mkdir(exist_ok=True)
    report = Report(out, plan, argv)
    report.data["work_dir"] = str(work)
    report.save()
    start = time.time()
    deadline = start + plan.total_s
    signal.signal(
        signal.SIGTERM, lambda *_: (report.data["failures"].append("stopped by SIGTERM"), report.save(True), sys.exit(143))
    )
    schedule = [
        ("environment", "1. Environment"),
        ("contract", "2. Forward/backward, contract, fp32 vs bf16"),
        ("bench", "3. Latency, throughput, memory, training step"),
        ("train", "4. Presets: train, resume, eval; torchrun"),
        ("continue_default", "5. Continue the shipped default model"),
    ]
    bodies = {
        "environment": lambda part: part_environment(part, plan),
        "contract": lambda part: part_contract(part, plan),
        "bench": lambda part: part_bench(part, plan, work),
        "train": lambda part: part_train(part, plan, work),
        "continue_default": lambda part: part_continue(part, plan, work, out, args),
    }
    cumulative = start
    only = set(args.parts.split(",")) if args.parts else None
    for key, title in schedule:
        cumulative += plan.budgets.get(key, 0)
        part_deadline = deadline if key == "continue_default" else min(cumulative, deadline)
        if only is not None and key not in only:
            continue
        print(f"gpu_check: {title} (until +{part_deadline - start:.0f} s)", flush=True)
        run_part(report, key, title, part_deadline, bodies[key])
        print(f"gpu_check:   -> {report.data['parts'][key]['status']}", flush=True)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    files = output_files(out)
    report.data["output_files"] = {p.name: p.stat().st_size for p in files}
    if len(files) > MAX_OUT_FILES or any(p.stat().st_size >= MAX_FILE_BYTES for p in files):
        report.data["failures"].append(
            f"output folder breaks the limits: {len(files)} files, sizes {report.data['output_files']}"
        )
    report.save(final=True)
    print((out / REPORT_MD).read_text())
    failed = [k for k, p in report.data["parts"].items() if p["status"] == "failed"]
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m inpaintlab.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("out", help="output folder (empty or a previous gpu_check output): at most 8 files come back")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny models, builtin photos: the CI plumbing test")
    p.add_argument(
        "--data",
        help="folder made by scripts/gpu_data.sh (GPU default gpu_data; smoke default: built-in photos and generated masks)",
    )
    p.add_argument("--budget-s", type=float, help="whole-run time budget in seconds (GPU 450, smoke 420)")
    p.add_argument("--parts", help="comma-separated subset of environment,contract,bench,train,continue_default")
    p.add_argument("--max-models", type=int, help="only the first N models (parts 2-3)")
    p.add_argument("--max-presets", type=int, help="only the first N presets (part 4)")
    p.add_argument("--default-model", help="the shipped default (default: inpaintlab.pretrained.DEFAULT_MODEL)")
    p.add_argument("--default-preset", default="lgnet_compact_cpu", help="its recipe when its card names none")
    p.add_argument("--default-weights", help="shipped-format weights (.safetensors with its .json card beside it)")
    p.add_argument("--continue-batch", type=int, default=64, help="part 5 batch (default 64)")
    p.add_argument("--continue-lr", type=float, default=1e-4, help="part 5 peak lr, decayed linearly to 0 (1e-4)")
    p.add_argument("--memory-budget-gib", type=float, default=32.0, help="bf16 throughput memory budget (32 GiB)")
    p.add_argument("--work-dir", help="folder for runs and checkpoints (default: a new temporary folder)")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder")
    return p


def build_data_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inpaintlab.gpu_check prepare-data",
        description="copy photos and masks for the GPU run into a git-ignored folder",
    )
    p.add_argument("out", nargs="?", default="gpu_data", help="folder to (re)create (default gpu_data)")
    p.add_argument("--dataset", default=os.environ.get("INPAINTLAB_DATA"), help="dataset root ($INPAINTLAB_DATA)")
    p.add_argument("--split", help="an existing `inpaintlab split` folder (else one is made from --dataset)")
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-heldout", type=int, default=0, help="held-out photos (0 = all)")
    p.add_argument("--n-train-masks", type=int, default=1000)
    p.add_argument("--masks-per-bin-small", type=int, default=10)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    if argv[:1] == ["prepare-data"]:
        a = build_data_parser().parse_args(argv[1:])
        manifest = prepare_data(a.out, a.dataset, a.split, a.n_train, a.n_heldout, a.n_train_masks, a.masks_per_bin_small)
        print(json.dumps(manifest, indent=2))
        print(f"wrote {a.out}: {manifest['bytes'] / 2**20:.1f} MiB (carry it: docs/gpu.md)")
        return 0
    args = build_parser().parse_args(argv)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The few lines only a GPU runs (device choice, synchronisation, memory statistics, the memory-budget batch
search, NCCL and driver versions); a CPU run takes their ``device != "cuda"`` branch.
"""

from __future__ import annotations

import contextlib
import gc
import subprocess
import time
from typing import Any, Callable

import numpy as np
import torch

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

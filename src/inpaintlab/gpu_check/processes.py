"""Child processes of a GPU check run: CLI commands with a timeout (the whole process group killed), in-process
CLI calls, and the torchrun worker with its process-group probe.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .cuda import _cuda_device, _cuda_nccl_version
from .plan import SRC_DIR
from .report import Report, _error_tail, _one_line


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
    from ..cli import main as cli_main

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
    from ..cli import main as cli_main

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

    from ..bench import bench_inputs
    from ..models import create_model

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

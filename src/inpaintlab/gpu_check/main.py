"""The GPU check's command line: ``run`` (the five parts in order, each within its budget), the parsers and
``main``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .data import prepare_data
from .measure import part_bench, part_contract, part_environment
from .plan import LOG_TXT, MAX_FILE_BYTES, MAX_OUT_FILES, REPORT_JSON, REPORT_MD, make_plan
from .processes import worker
from .report import Report, output_files, run_part
from .training import part_continue, part_train


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
    p = argparse.ArgumentParser(
        prog="python -m inpaintlab.gpu_check",
        description="One prepared GPU run: every CUDA path of inpaintlab proven and measured in one command (docs/gpu.md).",
    )
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

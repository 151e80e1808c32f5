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
memory-budget batch search, NCCL) take their CPU branch, and those live in ``cuda.py``.

Rooms: ``plan`` (what runs, budgets), ``report`` (JSON/Markdown/log, the guards), ``processes`` (child
processes, the torchrun worker), ``cuda`` (the CUDA-only lines), ``measure`` (parts 1-3), ``training``
(parts 4-5), ``data`` (``prepare-data``), ``main`` (the command line).
"""

from .data import prepare_data
from .main import build_parser, main, run
from .plan import LOG_TXT, MAX_FILE_BYTES, MAX_OUT_FILES, REPORT_JSON, REPORT_MD, SMOKE_MODELS, Plan, make_plan
from .report import Part, Report, Skip, run_part

__all__ = [
    "LOG_TXT",
    "MAX_FILE_BYTES",
    "MAX_OUT_FILES",
    "REPORT_JSON",
    "REPORT_MD",
    "SMOKE_MODELS",
    "Part",
    "Plan",
    "Report",
    "Skip",
    "build_parser",
    "main",
    "make_plan",
    "prepare_data",
    "run",
    "run_part",
]

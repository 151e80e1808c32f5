"""What a GPU check run does: the models, presets and budgets of the full and smoke runs (``Plan``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parents[2]  # the folder holding the package (``src``)
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
    def train_amp(self) -> str:
        """Autocast of every training run: bf16, except on a CPU that only emulates it (~10-30x slower than
        fp32 there: the smoke run on such a CPU trains in fp32; its contract part still runs bf16)."""
        return "bf16" if self.device != "cpu" or cpu_has_bf16() else "none"

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
        from .. import pretrained
    except Exception:  # noqa: BLE001 - the module may not exist (yet): the caller falls back
        return None
    return getattr(pretrained, "DEFAULT_MODEL", None)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere torch emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags

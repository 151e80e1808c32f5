"""Parts 4-5 of a GPU check run: each paper preset trained, resumed and evaluated (and under torchrun), then
the shipped default continued and brought back only when the ledger's ship rule passes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..ledger import ship_rule
from .measure import _require_data, _require_device, _sets, recipe_overrides
from .plan import MAX_FILE_BYTES, RECIPES, Plan
from .processes import _worker_argv, run_process
from .report import Part, Report, Skip, _count_lines, _mib, _now


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
    return ["train", "--preset", preset, *_sets(sets), "--amp", plan.train_amp, "--device", plan.device, "--out", str(out)]


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
        from .. import pretrained
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
    from ..checkpoint import load_checkpoint, sub_state

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

    from ..checkpoint import save_checkpoint

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
        plan.train_amp,
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
    passes, why = ship_rule(before["overall"], after["overall"])  # the card ledger's rule: PSNR and detail
    result.update(
        shipped_eval=before,
        continued_eval=after,
        passes_ship_rule=passes,
        ship_rule=why,
        psnr_gain_db=after["overall"]["psnr"] - before["overall"]["psnr"],
    )
    if passes:
        result["returned"] = _return_weights(newest, out, card, result, argv)
    else:
        result["returned"] = None
        result["note"] = f"{why}: the weights were not brought back"
    result["problems"] = []
    return result


def _inference_size(card: dict[str, Any], default: int) -> int:
    size = card.get("inference_size")
    return size if isinstance(size, int) and size > 0 else default


def _preset_names() -> set[str]:
    from ..presets import PRESETS

    return set(PRESETS)


def _measured_rate(report: Report, name: str) -> float | None:
    """bf16 training images/s of ``name`` from part 3, if measured."""
    item = report.data["parts"].get("bench", {}).get("items", {}).get(name, {})
    row = item.get("train_step", {}).get("variants", {}).get("bf16", {})
    return row.get("images_per_s")


def _return_weights(checkpoint: Path, out: Path, card: dict[str, Any], result: dict[str, Any], argv: list[str]) -> list[str]:
    """Write the continued EMA generator in the shipped format (``shipping.write_pretrained``: fp16 + card, the
    card's step counting the continuation's) into the output folder; a file over the return limit is removed."""
    from ..checkpoint import read_header
    from ..shipping import write_pretrained

    fields = {k: v for k, v in card.items() if k not in ("format", "model", "weights")}
    fields["step"] = int(card.get("step", 0)) + int(read_header(checkpoint)["step"])
    fields["gpu_continuation"] = {
        "steps": result["train"]["steps"],
        "batch": result["batch"],
        "lr": result["lr"],
        "seconds": result["train"]["seconds"],
        "command": " ".join(argv[1:]),
        "heldout_before": result["shipped_eval"]["overall"],
        "heldout_after": result["continued_eval"]["overall"],
        "date": _now(),
    }
    weights, card_path = write_pretrained(checkpoint, out, fields)
    size = weights.stat().st_size
    if size >= MAX_FILE_BYTES:
        weights.unlink()
        card_path.unlink()
        raise RuntimeError(f"{weights.stem} weights are {size / 2**20:.1f} MiB in fp16: over the 16 MB limit")
    return [weights.name, card_path.name]

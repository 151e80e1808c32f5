"""The report of a GPU check run: ``gpu_report.json`` rewritten after every item, the Markdown summary, the
log, and the guards (``Part``, ``Skip``) that keep one failure from stopping the rest.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .cuda import _free_memory
from .plan import _LOG_LIMIT, LOG_TXT, REPORT_JSON, REPORT_MD, Plan

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
            "plan": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(plan).items()},
                "train_amp": plan.train_amp,
            },
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
        f"## Training: {steps} steps ({data['plan']['train_amp']}), resume from step {steps // 2}, eval of the resumed checkpoint",
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
            "| weights | images | L1 | PSNR | SSIM | detail ratio |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, ev in (("shipped", r["shipped_eval"]), ("continued", r["continued_eval"])):
            o = ev["overall"]
            lines.append(
                f"| {label} | {ev['images']} | {_f(o.get('l1'), 3)} | {_f(o.get('psnr'), 2)} | {_f(o.get('ssim'), 4)} "
                f"| {_f(o.get('detail'), 3)} |"
            )
        lines += [
            "",
            f"PSNR gain {r['psnr_gain_db']:+.3f} dB; the ship rule: {r['ship_rule']}: "
            + (f"weights returned as {', '.join(r['returned'])}." if r["passes_ship_rule"] else "nothing returned."),
        ]
    return lines


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

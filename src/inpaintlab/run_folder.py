"""A training run's folder: one run per folder, logs cut back on resume, nothing deleted.

Contents: ``config.json``, ``metrics.jsonl``, ``tb/`` (TensorBoard), ``checkpoints/step_XXXXXXXX.safetensors``,
``curves.png``, ``samples.png``, ``summary.json``.

- Starting (no resume) into a folder that holds a run is an error; ``overwrite=True`` first moves the
  whole folder aside to ``<folder>.replaced-<UTC time>`` (never deletes it).
- Resuming from step N (``set_aside``): what belongs to a continuation past N moves to
  ``superseded/<UTC time>-resume-step-N/``: checkpoints newer than N (and damaged ones ``--resume auto``
  skipped), the ``metrics.jsonl`` rows after N (with a line cut off by a kill) and a ``config.json`` that
  differs from the resumed run's; TensorBoard events after N are hidden by ``SummaryWriter(purge_step=N+1)``.
  Resuming from step 0 (a run killed before its first checkpoint) sets aside all its logs and ``tb/``.
  Temporary files of a checkpoint write that was killed (``checkpoints/.step_*.tmp``) are incomplete by
  construction and are removed.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .checkpoint import resumable_checkpoint, step_of, verify_training_checkpoint
from .errors import InpaintlabError

RUN_ENTRIES = ("config.json", "metrics.jsonl", "tb", "checkpoints", "summary.json")


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _free(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... whichever does not exist yet."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def run_entries(out: Path) -> list[str]:
    """The run files present in ``out`` (an empty ``tb/`` or ``checkpoints/`` does not count)."""
    found = []
    for name in RUN_ENTRIES:
        path = out / name
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            found.append(name)
    return found


LOCK_FILE = ".lock"
_HELD: dict[Path, Any] = {}  # lock file -> open handle: this process's run folders


def lock_run_folder(out: str | Path):
    """Take the run folder for this process: an exclusive OS lock on ``out/.lock``, held until the process
    ends (kill -9 included). A run of another process into the same folder fails at once, naming the
    process that holds it, before anything is read or written; this process may take it again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InpaintlabError(f"--out {out} is a file; expected a run folder")
    out.mkdir(parents=True, exist_ok=True)
    key = (out / LOCK_FILE).resolve()
    held = _HELD.get(key)
    if held and not held.closed and key.exists() and os.fstat(held.fileno()).st_ino == key.stat().st_ino:
        return held  # (a folder moved aside by --overwrite took its lock file along: lock the new one)
    handle = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise InpaintlabError(
            f"{out} is in use by another training run (process {holder}); wait for it to finish or choose another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD[key] = handle
    return handle


def choose_start(out: str | Path, resume: str | Path | None, overwrite: bool = False, is_main: bool = True) -> dict:
    """Where a run in ``out`` starts; raises before anything is built or moved (except ``overwrite``'s move).

    Returns {"from": checkpoint or None, "step", "hashed", "skipped": [(path, why)]} for a resume (also
    from step 0: "auto" in a run killed before its first checkpoint), {"replaced": where the old run went}
    after ``overwrite``, or {} for a fresh folder.
    """
    out = Path(out)
    if overwrite and resume:
        raise InpaintlabError("--overwrite starts the run over; it cannot be combined with --resume")
    if resume == "auto":
        path, header, hashed, skipped = resumable_checkpoint(out / "checkpoints")
        if path is None and skipped:
            reasons = "; ".join(f"{p.name}: {why}" for p, why in skipped)
            raise InpaintlabError(
                f"--resume auto: no checkpoint in {out / 'checkpoints'} verifies ({reasons}); "
                "resume from a file explicitly, or --overwrite to start over"
            )
        if path is None and not run_entries(out):
            return {}
        return {"from": path, "step": header["step"] if header else 0, "hashed": hashed, "skipped": skipped}
    if resume:
        header, hashed = verify_training_checkpoint(resume)
        return {"from": Path(resume), "step": header["step"], "hashed": hashed, "skipped": []}
    replaced = claim(out, overwrite) if is_main else None
    return {"replaced": replaced} if replaced else {}


def prepare(out: str | Path, start: dict, cfg: Any) -> None:
    """Rank 0, start of training: say where the run starts (stderr), ``set_aside`` what the resume supersedes
    and write ``cfg`` (a ``TrainConfig``) to ``config.json``."""
    from .config import save_config, to_dict

    out, say, config = Path(out), _say, to_dict(cfg)
    # the folder is ours (lock_run_folder): partial checkpoint writes left by a killed run are garbage
    for stale in sorted((out / "checkpoints").glob(".*tmp*")) if (out / "checkpoints").is_dir() else []:
        say(f"removed {stale.name} ({stale.stat().st_size:,} bytes), a checkpoint write cut short by a killed run")
        stale.unlink()
    if start.get("replaced"):
        say(f"--overwrite: the previous run in {out} was moved to {start['replaced']}")
    for path, why in start.get("skipped", []):
        say(f"resume: skipped {path}: {why}")
    if start.get("from"):
        check = "content hash verified" if start["hashed"] else "header and sizes checked; no content hash (older file)"
        say(f"resuming from {start['from']} (step {start['step']}; {check})")
    elif "step" in start:
        say(f"resume: no checkpoint in {out / 'checkpoints'} yet; starting over at step 0")
    if "step" in start:
        start["set_aside"] = set_aside(out, start["step"], [p for p, _ in start["skipped"]], config)
        if start["set_aside"] is not None:
            say(f"set aside what came after step {start['step']} (logs, later or damaged checkpoints) in {start['set_aside']}")
        _wait_past_event_files(out / "tb")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")


def _wait_past_event_files(tb: Path) -> None:
    """Sleep (< 1 s) until a new TensorBoard event file sorts after the existing ones: names start with the
    creation second, TensorBoard reads them in name order, and ``purge_step`` only hides events of files read
    before the one that carries it (a run killed and resumed within one second would otherwise show both)."""
    stamps = [int(p.name.split(".")[3]) for p in tb.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()]
    if stamps and max(stamps) + 1 > time.time():
        time.sleep(max(stamps) + 1 - time.time())


def claim(out: str | Path, overwrite: bool = False) -> Path | None:
    """Make sure a fresh run may start in ``out``; returns where an overwritten run was moved (or None)."""
    out = Path(out)
    present = run_entries(out)
    if not present:
        return None
    if not overwrite:
        checkpoints = sorted((out / "checkpoints").glob("step_*.safetensors"), key=step_of)
        last = f", checkpoints up to step {step_of(checkpoints[-1])}" if checkpoints else ""
        raise InpaintlabError(
            f"{out} already holds a run ({', '.join(present)}{last}); pass --resume auto to continue it, "
            "--overwrite to move it aside and start over, or choose another --out"
        )
    out = out.resolve()
    if out == Path.cwd() or out in Path.cwd().parents:
        raise InpaintlabError(f"--overwrite cannot move {out} aside: it holds the current directory; choose another --out")
    aside = _free(out.with_name(f"{out.name}.replaced-{_stamp()}"))
    os.replace(out, aside)
    return aside


def set_aside(out: str | Path, step: int, skipped: list[Path] = (), config: dict | None = None) -> Path | None:
    """Prepare ``out`` to continue from ``step`` (module docstring); returns the folder things moved to, if any."""
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    for partial in ckpt_dir.glob(".step_*.tmp"):
        partial.unlink()
    aside = _free(out / "superseded" / f"{_stamp()}-resume-step-{step}")
    moves: list[tuple[Path, Path]] = []
    later = [p for p in ckpt_dir.glob("step_*.safetensors") if step_of(p) > step]
    for path in sorted({*later, *(Path(p) for p in skipped if Path(p).exists())}):
        moves.append((path, aside / "checkpoints" / path.name))
    if step == 0:
        moves += [(out / name, aside / name) for name in ("metrics.jsonl", "tb") if (out / name).exists()]
    cut = [] if step == 0 else _cut_metrics(out / "metrics.jsonl", step)
    if config is not None and (out / "config.json").is_file() and _json_or_none(out / "config.json") != config:
        moves.append((out / "config.json", aside / "config.json"))
    if not moves and not cut:
        return None
    for source, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    if cut:
        aside.mkdir(parents=True, exist_ok=True)
        (aside / "metrics.jsonl").write_text("".join(cut))
    return aside


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _cut_metrics(path: Path, step: int) -> list[str]:
    """Keep the rows of ``metrics.jsonl`` up to ``step``; return the removed lines (rows after it, broken lines)."""
    if not path.is_file():
        return []
    keep, cut = [], []
    for line in path.read_text().splitlines(keepends=True):
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            row_step = None
        (keep if row_step is not None and line.endswith("\n") and row_step <= step else cut).append(line)
    if cut:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(keep))
        os.replace(temporary, path)
    return cut


def report_skipped_images(*datasets, final: bool = False) -> list[str]:
    """Say once (stderr) each image a dataset skipped because it does not decode (``data.skip_bad``).

    final=True: also return every skipped path so far, gathered over DDP ranks (then every rank calls it).
    """
    for dataset in datasets:
        for path, why in getattr(dataset, "newly_skipped", list)():
            _say(f"skipped unreadable image {path}: {why} (data.skip_bad=true)")
    if not final:
        return []
    skipped = sorted({str(p) for dataset in datasets for p in getattr(dataset, "skipped_files", list)()})
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, skipped)
        skipped = sorted({path for files in gathered for path in files})
    return skipped


def finish(out: str | Path, start: dict, last_batch: tuple | None, *, skipped_images: list[str], **facts: Any) -> Path:
    """Rank 0, end of training: ``curves.png``, ``samples.png`` (``last_batch`` = image, mask, outputs) and
    ``summary.json``: ``facts`` (steps, checkpoint, last scalars...), where this segment started (checkpoint
    resumed from, checkpoints skipped and why, what was set aside), the files skipped as unreadable (the union
    over every segment of the run) and the earlier segments' records."""
    from .report import image_grid, plot_training_curves, save_image, strict_json

    out = Path(out)
    if (out / "metrics.jsonl").exists():
        plot_training_curves(out / "metrics.jsonl", out / "curves.png")
    if last_batch is not None:
        save_image(image_grid(*last_batch), out / "samples.png")
    previous = (_json_or_none(out / "summary.json") or {}) if (out / "summary.json").is_file() else {}
    files = sorted({*previous.get("skipped_images", {}).get("files", []), *skipped_images})
    segment = {
        "resumed_from": str(start["from"]) if start.get("from") else None,
        "resume_step": start.get("step"),
        "content_hash_verified": start.get("hashed"),
        "set_aside": str(start.get("set_aside") or "") or None,
        "skipped_checkpoints": [{"file": str(p), "reason": why} for p, why in start.get("skipped", [])],
        "replaced_run_moved_to": str(start["replaced"]) if start.get("replaced") else None,
        **{k: str(v) if isinstance(v, Path) else v for k, v in facts.items()},
    }
    summary = {
        **segment,
        "skipped_images": {"count": len(files), "files": files},
        "segments": [*previous.get("segments", []), segment],
    }
    (out / "summary.json").write_text(strict_json(summary, indent=2) + "\n")
    if files:
        _say(f"{len(files)} unreadable image(s) skipped in this run (data.skip_bad); listed in {out / 'summary.json'}")
    return out / "summary.json"


def _say(text: str) -> None:
    print(f"inpaintlab: {text}", file=sys.stderr, flush=True)


__all__ = ["RUN_ENTRIES", "choose_start", "claim", "finish", "prepare", "report_skipped_images", "run_entries", "set_aside"]

"""One segment of the shipped default's training, end to end (``inpaintlab continue``; ``make continue`` runs it
in the background with one thread):

- plan: the run folder ``RUNS/<preset>-<first 8 hex digits of the shipped file's SHA-256>-seed<N>``, N = the
  card's ledger rows (a refused segment grows the ledger, so the next one draws other batches instead of
  re-running it bit for bit; after a ship the folder changes with the weights), ``-set<hash>`` added for a
  segment with ``--set`` overrides;
- train: the preset from the shipped weights (its ``init_from`` must be ``pretrained:NAME``), ``--resume
  auto``, on the split's training lists, validating on its held-out lists;
- evaluate: the shipped weights, Telea and the segment's EMA and live generators on the split's held-out
  images x masks (the protocol of ``inpaintlab eval``), one folder per row in ``RUN/eval``; rows already
  there are kept, so a stopped segment resumes its evaluation too (the shipped row only while the file it
  scored is still the one shipped), and the shipped and Telea rows of another segment in ``RUNS`` on the same
  pairs are copied rather than scored again (~7 minutes each on one thread);
- ship: ``ledger.ship_continued`` on the EMA, and when that is refused on the live generator (a segment's EMA
  may still hold much of its start): each judged generator is a ledger row, at most one ships, and the
  outcome goes to ``RUN/segment.json``. Each candidate is judged against the file shipped at that moment: a
  segment run beside this one that shipped meanwhile has its file scored first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InpaintlabError

DEFAULT_RECIPE = "lgnet_compact_texture_x3"  # the recipe that has shipped the default's recent segments
CANDIDATES = ("ema", "live")  # judged in this order; the rows' labels in RUN/eval
SPLIT_FILES = ("train_images", "train_masks", "heldout_images", "heldout_masks")


def plan_segment(name: str, preset: str, runs: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, int]:
    """(run folder, seed) of the next segment of ``name``'s shipped weights under ``preset``; a segment with
    ``--set`` overrides gets a folder of its own (``-set<hash of the overrides>``), never the recipe's."""
    from . import pretrained

    card = pretrained.model_card(name)
    sha = card.get("weights", {}).get("sha256")
    if not sha:
        raise InpaintlabError(f"{name}'s card records no SHA-256 of its weights; ship it with `inpaintlab ship` first")
    seed = len(card.get("ledger") or [])
    variant = f"-set{hashlib.sha256(chr(10).join(overrides).encode()).hexdigest()[:8]}" if overrides else ""
    return Path(runs).expanduser() / f"{preset}-{sha[:8]}-seed{seed}{variant}", seed


def split_lists(split: str | Path, data: str | Path | None = None) -> dict[str, Path]:
    """The split's four lists ({train,heldout}_{images,masks}.txt), made from ``data`` when missing."""
    split = Path(split).expanduser()
    lists = {key: split / f"{key}.txt" for key in SPLIT_FILES}
    if not all(path.is_file() for path in lists.values()):
        if data is None:
            raise InpaintlabError(f"{split} holds no split (train_images.txt ...); give the dataset folder to make one")
        from .splits import make_split

        make_split(data, split)
    return lists


def run_segment(
    name: str,
    preset: str = DEFAULT_RECIPE,
    *,
    split: str | Path,
    runs: str | Path,
    data: str | Path | None = None,
    overrides: Sequence[str] = (),
    amp: str | None = None,
    device: str = "cpu",
    ship: bool = True,
) -> dict[str, Any]:
    """Plan, train, evaluate and (with ``ship``) judge one segment (module docstring). Returns what
    ``RUN/segment.json`` holds: run folder, checkpoint, CPU hours, the held-out rows and the verdicts."""
    from . import pretrained
    from .ledger import ship_continued
    from .presets import resolve_train_config
    from .report import strict_json
    from .train import run_training

    run_dir, seed = plan_segment(name, preset, runs, overrides)
    lists = split_lists(split, data)
    paths = {
        "data.root": lists["train_images"],
        "masks.source": lists["train_masks"],
        "data.val_root": lists["heldout_images"],
        "masks.val_source": lists["heldout_masks"],
    }
    settings = [f"seed={seed}", *(f"{key}={path}" for key, path in paths.items()), *overrides]
    cfg, _ = resolve_train_config(preset, None, settings, amp)
    if cfg.init_from != f"pretrained:{name}":
        raise InpaintlabError(
            f"preset {preset} starts from {cfg.init_from or 'scratch'!r}, not from the shipped weights "
            f"(pretrained:{name}): a segment continues them"
        )
    run_training(cfg, run_dir, device=device, resume="auto")
    summary = json.loads((run_dir / "summary.json").read_text())
    checkpoint = Path(summary["checkpoint"])
    hours = round(sum(part.get("seconds") or 0 for part in summary["segments"]) / 3600, 2)
    eval_dir = run_dir / "eval"

    def score() -> dict[str, dict[str, float]]:
        return evaluate_segment(name, checkpoint, eval_dir, lists["heldout_images"], lists["heldout_masks"], device)

    rows = score()
    verdicts = []
    for label in CANDIDATES if ship else ():
        rows = score()  # a segment run beside this one may have shipped meanwhile: then its file is scored anew
        shipped, why = ship_continued(
            checkpoint, eval_dir, name, pretrained.WEIGHTS_DIR, hours, shipped_label=name, candidate_label=label
        )
        verdicts.append({"candidate": label, "shipped": shipped, "why": why})
        if shipped:
            break
    result = {
        "run": str(run_dir),
        "overrides": list(overrides),
        "checkpoint": str(checkpoint),
        "cpu_hours": hours,
        "heldout": rows,
        "verdicts": verdicts,
    }
    (run_dir / "segment.json").write_text(strict_json(result, indent=2) + "\n")
    return result


def evaluate_segment(
    name: str, checkpoint: Path, eval_dir: Path, images: Path, masks: Path, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """Score the shipped ``name``, Telea and ``checkpoint``'s EMA and live generators into ``eval_dir/<row>``
    (rows already scored, of these very weights, are kept; the shipped and Telea rows are copied from another
    segment's ``eval`` in the same runs folder when it scored them on the same pairs). Returns {row: overall}."""
    from .data import build_dataset
    from .evaluate import evaluate, load_rows
    from .masks import MaskFolder
    from .pretrained import model_card

    pairs = {"images_source": str(images), "masks_source": str(masks)}
    wanted = {name: {"model": name, "weights_sha256": model_card(name)["weights"]["sha256"]}, "telea": {"model": "telea"}}
    wanted.update({label: {"checkpoint": str(checkpoint), "weights": label} for label in CANDIDATES})
    dataset = mask_folder = None
    rows = {}
    for label, source in wanted.items():
        path, scored = eval_dir / label / "metrics.json", {**pairs, **source}
        report = json.loads(path.read_text()) if path.is_file() else None
        if not _scored_as(report, scored) and "checkpoint" not in source:
            report = _scored_by_a_sibling(eval_dir, label, scored)
        if not _scored_as(report, scored):
            if dataset is None:
                dataset, mask_folder = build_dataset(str(images), split="test", size=256), MaskFolder(masks, 256)
            row = ("checkpoint", f"{label}={checkpoint}") if "checkpoint" in source else ("model", source["model"])
            [(_, model)], provenance = load_rows([row], device, source.get("weights", "ema"))
            settings = {**pairs, **next(iter(provenance.values()))}
            report = evaluate(model, dataset, mask_folder, out_dir=eval_dir / label, device=device, settings=settings)
        rows[label] = report["overall"]
    return rows


def _scored_as(report: dict[str, Any] | None, settings: dict[str, str]) -> bool:
    """Whether ``report`` (a metrics.json, or None) was scored with these settings (source and pairs)."""
    return report is not None and all(report["settings"].get(k) == v for k, v in settings.items())


def _scored_by_a_sibling(eval_dir: Path, label: str, settings: dict[str, str]) -> dict[str, Any] | None:
    """Another segment's row ``label`` (RUNS/*/eval/label) scored with ``settings`` (the same file or method on
    the same pairs), copied into ``eval_dir/label``; None if no segment has one."""
    import shutil

    for path in sorted(eval_dir.parent.parent.glob(f"*/eval/{label}/metrics.json")):
        if path.parent.parent != eval_dir and _scored_as(report := json.loads(path.read_text()), settings):
            shutil.rmtree(eval_dir / label, ignore_errors=True)
            shutil.copytree(path.parent, eval_dir / label)
            return report
    return None


__all__ = ["CANDIDATES", "DEFAULT_RECIPE", "evaluate_segment", "plan_segment", "run_segment", "split_lists"]

"""Continuing the shipped default: one evaluation, the ship rule, and the card's ledger.

A continuation segment ends with (``inpaintlab continue`` does all of it: ``continuation.py``)

    inpaintlab eval --model lgnet_compact --checkpoint candidate=RUN/checkpoints/step_N.safetensors \\
        --model telea --images SPLIT/heldout_images.txt --masks SPLIT/heldout_masks.txt --out EVAL
    inpaintlab ship-continued RUN/checkpoints/step_N.safetensors --eval EVAL

so the shipped weights and the candidate are scored on the same held-out images and masks. The rule
(``ship_rule``): new weights ship only if the held-out PSNR does not fall **and** the detail ratio does not
fall, and then only if the file as it would ship keeps the promises the card lists (``promises.py``: e.g.
no worse than Telea on smooth backgrounds). Either way the card's ``ledger`` gets one row for the segment
(date, starting weights, steps, crops, CPU hours, recipe, held-out PSNR / SSIM / L1 / detail ratio, shipped
or not and why); refused weights leave the shipped file untouched.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import InpaintlabError
from .evaluate import DEFAULT_METRICS


def eval_table(eval_dir: str | Path, label: str) -> dict[str, Any]:
    """``{"overall": {...}, "bins": {label: {...}}, "weights": "ema" | "live", "weights_sha256": str | None}`` of
    one row of an ``inpaintlab eval`` folder (``weights``: which generator of a checkpoint was scored;
    ``weights_sha256``: the shipped file scored, for a row of shipped weights)."""
    path = Path(eval_dir) / label / "metrics.json"
    if not path.is_file():
        raise InpaintlabError(f"{path} not found: evaluate the row {label!r} into {eval_dir} first (module docstring)")
    report = json.loads(path.read_text())
    missing = [k for k in ("psnr", "detail") if k not in report["overall"]]
    if missing:
        raise InpaintlabError(f"{path} has no {missing[0]!r}; run inpaintlab eval with its default metrics")
    pick = lambda values: {k: values[k] for k in DEFAULT_METRICS if k in values}  # noqa: E731
    settings = report.get("settings", {})
    return {
        "overall": pick(report["overall"]),
        "bins": {b: pick(v) for b, v in report["bins"].items()},
        "weights": settings.get("weights") or "ema",
        "weights_sha256": settings.get("weights_sha256"),
    }


def paired_versus_shipped(eval_dir: str | Path, shipped_label: str, candidate_label: str) -> dict[str, Any] | None:
    """{"psnr": ..., "detail": ...}: the candidate row minus the shipped row on the same held-out pairs, each
    ``report.paired_difference`` (mean and 95 % interval over images); None for rows without per-image values."""
    from .report import paired_difference

    reports = [json.loads((Path(eval_dir) / label / "metrics.json").read_text()) for label in (shipped_label, candidate_label)]
    if not all(r.get("per_image") for r in reports):
        return None
    return {metric: paired_difference(*reports, metric) for metric in ("psnr", "detail")}


def _interval_note(paired: dict[str, Any] | None) -> str:
    """The verdict's tail, e.g. "; paired 95 % intervals: PSNR +0.061..+0.083 dB, detail ratio -0.053..-0.039"
    (empty for rows without per-image values)."""
    if not paired:
        return ""
    psnr, detail = paired["psnr"]["ci95"], paired["detail"]["ci95"]
    return f"; paired 95 % intervals: PSNR {psnr[0]:+.3f}..{psnr[1]:+.3f} dB, detail ratio {detail[0]:+.3f}..{detail[1]:+.3f}"


def _versus(a: float, b: float, digits: int = 3) -> str:
    """The text "a vs b" with 3 decimals, or as many more (up to 6) as it takes to show unequal values differ."""
    while digits < 6 and a != b and f"{a:.{digits}f}" == f"{b:.{digits}f}":
        digits += 1
    return f"{a:.{digits}f} vs {b:.{digits}f}"


def ship_rule(shipped: dict[str, float], candidate: dict[str, float]) -> tuple[bool, str]:
    """(ship?, why) for two ``overall`` tables measured on the same held-out pairs."""
    falls = [name for k, name in (("psnr", "PSNR"), ("detail", "detail ratio")) if candidate[k] < shipped[k]]
    numbers = (
        f"PSNR {_versus(candidate['psnr'], shipped['psnr'])} dB, detail ratio {_versus(candidate['detail'], shipped['detail'])}"
    )
    if falls:
        return False, f"refused: the held-out {' and '.join(falls)} would fall ({numbers})"
    return True, f"shipped: neither the held-out PSNR nor the detail ratio falls ({numbers})"


def segment_row(
    header: dict[str, Any],
    candidate: dict[str, Any],
    shipped: bool,
    why: str,
    hours: float | None,
    start_sha256: str | None = None,
) -> dict:
    """The ledger row of a training segment from its checkpoint header and held-out table; ``start_sha256``:
    the shipped weights it started from (``pretrained:NAME`` names a file that changes over time)."""
    config = header["config"]
    return {
        "date": datetime.date.today().isoformat(),
        "start": config.get("init_from") or "scratch",
        "start_sha256": start_sha256,
        "steps": header["step"],
        "crops": header["step"] * config["batch_size"] * header.get("world_size", 1),
        "cpu_hours": hours,
        "recipe": {
            "preset_model": config["model"]["name"],
            "model_kwargs": config["model"]["kwargs"],
            "discriminator": {"name": config["model"]["discriminator"], **config["model"]["discriminator_kwargs"]},
            "loss": config["loss"],
            "optim": config["optim"],
            "amp": config["amp"],
            "data": config["data"],
            "seed": config.get("seed", 0),
        },
        "heldout": candidate["overall"],
        "weights": candidate["weights"],
        "shipped": shipped,
        "why": why,
    }


def ship_continued(
    checkpoint: str | Path,
    eval_dir: str | Path,
    name: str,
    weights_dir: str | Path,
    hours: float | None = None,
    shipped_label: str | None = None,
    candidate_label: str = "candidate",
) -> tuple[bool, str]:
    """Apply ``ship_rule`` to ``checkpoint`` (a continuation of ``name``'s shipped weights) and record the
    segment in the card's ledger; on success the weights, held-out table and step are replaced. Returns
    (shipped?, why)."""
    from .checkpoint import read_header
    from .shipping import write_pretrained

    weights_dir = Path(weights_dir)
    card_path = weights_dir / f"{name}.json"
    if not card_path.is_file():
        raise InpaintlabError(f"{card_path} not found: {name} has no shipped card to continue")
    card = json.loads(card_path.read_text())
    header = read_header(checkpoint)
    if header["model"]["name"] != name:
        raise InpaintlabError(f"{checkpoint} holds {header['model']['name']!r}, not a continuation of {name!r}")
    current, candidate = eval_table(eval_dir, shipped_label or name), eval_table(eval_dir, candidate_label)
    shipped_sha = card.get("weights", {}).get("sha256")
    if current["weights_sha256"] and shipped_sha and current["weights_sha256"] != shipped_sha:
        raise InpaintlabError(
            f"{eval_dir}: the row {shipped_label or name!r} scored the shipped weights {current['weights_sha256'][:8]}..., "
            f"but the shipped file is now {shipped_sha[:8]}... (another segment shipped since): evaluate "
            f"--model {name} and the candidate again into a new folder, so the candidate is judged against what ships now"
        )
    ship, why = ship_rule(current["overall"], candidate["overall"])
    paired = paired_versus_shipped(eval_dir, shipped_label or name, candidate_label)
    why += _interval_note(paired)  # the rule judges the means; the intervals say how sure each difference is
    ledger = card.get("ledger") or [_first_row(card, current)]
    start = header.get("init_sha256") or shipped_sha  # older checkpoints lack the first
    ledger.append({**segment_row(header, candidate, ship, why, hours, start), "versus_shipped": paired})
    if not ship:
        card["ledger"] = ledger
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        return ship, why
    fields = {k: v for k, v in card.items() if k not in ("format", "model", "weights")}
    fields["ledger"] = ledger
    fields["step"] = int(card["step"]) + int(header["step"])
    note = "; continued since (steps, data and held-out numbers per segment in the ledger)"
    fields["summary"] = card.get("summary", "") if note in card.get("summary", "") else card.get("summary", "") + note
    fields["heldout"] = {**card.get("heldout", {}), "model": candidate}
    telea = Path(eval_dir) / "telea" / "metrics.json"
    if telea.is_file():
        fields["heldout"]["telea"] = eval_table(eval_dir, "telea")
    fields.pop("batchnorm", None)  # the EMA's own averaged statistics ship (no re-estimation)
    fields.update(_architecture_fields(card, header["config"]["model"]))
    with tempfile.TemporaryDirectory() as staging:  # the file as it would ship, held to the card's promises first
        staged = write_pretrained(checkpoint, staging, fields, generator=candidate["weights"])  # the scored generator
        broken = _broken_promises(name, staging, card.get("promises", []))
        if broken:
            ship, why = False, f"refused: it breaks the card's promises ({'; '.join(broken)}) although {why[len('shipped: ') :]}"
            ledger[-1].update(shipped=False, why=why)
            card["ledger"] = ledger
            card_path.write_text(json.dumps(card, indent=2) + "\n")
            return ship, why
        for path in staged:
            shutil.copyfile(path, weights_dir / path.name)
    return ship, why


def _broken_promises(name: str, weights_dir: str, promises: list[str]) -> list[str]:
    """``promises.broken_promises`` for ``name``'s weights in ``weights_dir`` (staged, not yet shipped)."""
    from .models import create_model
    from .pretrained import load_pretrained_weights, model_card
    from .promises import broken_promises

    if not promises:
        return []
    model = create_model(name, **model_card(name, weights_dir)["model"]["kwargs"])
    return broken_promises(load_pretrained_weights(model, name, weights_dir), promises)


def _architecture_fields(card: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """The card's ``architecture`` and ``parameters`` for the network a segment trained: a segment may change
    its options (e.g. LGNet's ``upsample``) and its discriminator, so they are taken from its config."""
    from .bench import count_parameters
    from .models import create_model

    parameters = count_parameters(create_model(model["name"], **model["kwargs"]))["total"]
    spec = {k: model[k] for k in ("name", "kwargs", "discriminator", "discriminator_kwargs")}
    fields: dict[str, Any] = {"parameters": parameters} if "parameters" in card else {}
    if "architecture" in card:
        fields["architecture"] = {**card["architecture"], "model": spec, "parameters": parameters}
    return fields


def _first_row(card: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """The ledger row of the weights shipped before the ledger existed, from their card (the held-out table
    as measured in this evaluation, so the detail ratio is there too)."""
    training = card.get("training", {})
    return {
        "date": None,
        "start": "scratch",
        "steps": card.get("step"),
        "crops": (card.get("step") or 0) * training.get("batch_size", 0),
        "cpu_hours": training.get("wall_time_h"),
        "recipe": {"preset": training.get("preset"), "losses": training.get("losses")},
        "heldout": measured["overall"],
        "shipped": True,
        "why": "the first shipped weights (before the ledger)",
    }


__all__ = ["eval_table", "segment_row", "ship_continued", "ship_rule"]

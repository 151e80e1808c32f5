"""What shipped weights promise beyond their held-out table, checked on the weights themselves.

A card's ``"promises"`` lists names from ``PROMISES``. Each check takes the network (weights and card
loaded, as ``create_model(name, pretrained=True)`` gives it) and returns the broken parts of the promise as
sentences; an empty list means it is kept. ``ship-continued`` runs the card's promises on a candidate before
it replaces the shipped file and refuses one that breaks any (the ledger row says which), and
``tests/test_pretrained.py`` holds the shipped default to the same checks. They need only the built-in
photos, and take ~30 s on one CPU thread.

>>> sorted(PROMISES)
['free_form_photos', 'smooth_backgrounds', 'smooth_backgrounds_network_alone']
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from torch import nn

from .errors import InpaintlabError
from .pipeline import InpaintPipeline

SMOOTH_SLACK_PIPELINE = 1.5  # grey levels (of 255) above Telea's hole error, with the card's smooth-region rule
SMOOTH_SLACK_NETWORK = 10.0  # the same for the network's own fill (flat grey answers are ~100 above)
FREE_FORM_FLOOR_DB = 21.5  # the built-in test photos at 256 px, seeded stroke holes of 10-50 %
FREE_FORM_MARGIN_DB = 0.3  # over Telea on the same pairs
FREE_FORM_DETAIL_SHARE = 0.8  # of Telea's detail ratio, at least


def _smooth_backgrounds(model: nn.Module, network_alone: bool) -> list[str]:
    """Large object-shaped holes (10, 25, 40 %) in smooth 512 px backgrounds (``smooth_backgrounds``), where
    Telea is at its best: the hole's mean error must stay within Telea's plus the slack, picture by picture."""
    from .data import builtin_photo_paths, load_image
    from .strategy_check import compare_strategies, smooth_backgrounds

    pictures = smooth_backgrounds(512, 512, load_image(builtin_photo_paths()["coffee"][0]))
    pipe = InpaintPipeline(model, smooth_threshold=0) if network_alone else InpaintPipeline(model)
    slack = SMOOTH_SLACK_NETWORK if network_alone else SMOOTH_SLACK_PIPELINE
    pipes = {"model": (pipe, None), "telea": (InpaintPipeline.from_checkpoint("telea"), None)}
    report = compare_strategies(pipes, pictures, ratios=(0.1, 0.25, 0.4), seeds=1)
    what = "the network alone" if network_alone else "the pipeline"
    return [
        f"{what} on {row['picture']} with a {row['ratio']:.0%} hole: hole error {row['model']['hole_mae']:.1f} "
        f"grey levels, Telea's {row['telea']['hole_mae']:.1f} + {slack:g} allowed"
        for row in report["rows"]
        if row["model"]["hole_mae"] > row["telea"]["hole_mae"] + slack
    ]


def _free_form_photos(model: nn.Module) -> list[str]:
    """The network alone (no smooth-region rule, which could hide a broken network behind Telea) on the
    built-in test photos at 256 px with seeded free-form stroke holes of 10-50 %: mean PSNR above the floor
    and Telea's plus the margin, detail ratio at least a share of Telea's."""
    from .data import builtin_photo_paths, load_image
    from .masks import bin_stroke_mask
    from .strategy_check import hole_errors

    pipes = {"network": InpaintPipeline(model, smooth_threshold=0), "telea": InpaintPipeline.from_checkpoint("telea")}
    scores: dict[str, list[dict[str, float]]] = {label: [] for label in pipes}
    for path, split in builtin_photo_paths().values():
        if split != "test":
            continue
        picture = cv2.resize(load_image(path), (256, 256), interpolation=cv2.INTER_AREA)
        for k in (1, 2, 3, 4):
            hole = bin_stroke_mask(256, k, np.random.default_rng([0, k])) > 0
            for label, pipe in pipes.items():
                scores[label].append(hole_errors(np.asarray(pipe(picture, hole)), picture, hole))
    net, telea = ({m: float(np.mean([r[m] for r in scores[label]])) for m in ("psnr", "detail")} for label in pipes)
    broken = []
    if net["psnr"] <= max(FREE_FORM_FLOOR_DB, telea["psnr"] + FREE_FORM_MARGIN_DB):
        broken.append(
            f"free-form holes in the built-in photos: {net['psnr']:.2f} dB, needs more than {FREE_FORM_FLOOR_DB} "
            f"and Telea's {telea['psnr']:.2f} + {FREE_FORM_MARGIN_DB}"
        )
    if net["detail"] <= FREE_FORM_DETAIL_SHARE * telea["detail"]:
        broken.append(
            f"free-form holes in the built-in photos: detail ratio {net['detail']:.3f}, needs more than "
            f"{FREE_FORM_DETAIL_SHARE:g} x Telea's {telea['detail']:.3f}"
        )
    return broken


PROMISES: dict[str, Callable[[nn.Module], list[str]]] = {
    "smooth_backgrounds": lambda model: _smooth_backgrounds(model, network_alone=False),
    "smooth_backgrounds_network_alone": lambda model: _smooth_backgrounds(model, network_alone=True),
    "free_form_photos": _free_form_photos,
}


def broken_promises(model: nn.Module, names: list[str]) -> list[str]:
    """Every broken part of the named promises (``PROMISES``) for ``model``; [] when all are kept."""
    unknown = [n for n in names if n not in PROMISES]
    if unknown:
        raise InpaintlabError(f"unknown promise {unknown[0]!r} in the card; known: {', '.join(sorted(PROMISES))}")
    return [sentence for name in names for sentence in PROMISES[name](model)]


__all__ = ["PROMISES", "broken_promises"]

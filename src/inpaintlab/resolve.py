"""The one rule for answering a user: ``resolve_model(source)`` is how every tool that answers one (``fill``,
``serve``, ``eval``, the pipeline) turns a name or a file into a model: a checkpoint file, a classical method
(no weights to learn), or a network with shipped weights. A registered network without weights is an error
naming the models that have weights: an untrained network never answers silently.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_model
from .errors import InpaintlabError
from .models import create_model, is_model
from .models.classical import CLASSICAL_MODELS
from .pretrained import has_weights, pretrained_models


def resolve_model(source: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A model that may answer a user: checkpoint file, classical method, or network with shipped weights.

    Raises ``InpaintlabError`` for a network that has neither (naming the models that have weights) and
    for anything that is neither a file nor a registered name.
    """
    if Path(source).is_file():
        return load_model(source, device=device)
    kind = answerable_kind(str(source))
    return create_model(str(source), pretrained=kind == "pretrained").to(device)


def answerable_kind(name: str) -> str:
    """ "pretrained" or "classical" for a registered name that may answer a user; else ``InpaintlabError``."""
    if not is_model(name):
        raise InpaintlabError(
            f"{name}: neither a checkpoint file nor a registered model name (models with weights: {_with_weights()})"
        )
    if has_weights(name):
        return "pretrained"
    if name in CLASSICAL_MODELS:
        return "classical"
    raise InpaintlabError(
        f"{name} is a network without trained weights, so it would answer with random "
        f"weights; use a model with weights ({_with_weights()}) or a checkpoint file "
        "from `inpaintlab train`"
    )


def _with_weights() -> str:
    return ", ".join(pretrained_models() + [f"{name} (classical)" for name in CLASSICAL_MODELS])


__all__ = ["answerable_kind", "resolve_model"]

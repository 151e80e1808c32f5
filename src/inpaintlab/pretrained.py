"""Trained weights shipped inside the package, their model cards, and the one rule for answering a user.

``weights/<name>.safetensors`` holds the EMA generator of a training run in fp16 (tensors only) and
``weights/<name>.json`` its card: the model spec (name, kwargs), the size it works at, the data, steps,
wall time, the held-out table and the commands that made it. Nothing is downloaded, ever.

>>> "lgnet_compact" in pretrained_models()
True

Loading needs nothing but the registry's model and this folder (no checkpoint, data or training code):
``resolve.py`` turns a user's name or file into a model, ``shipping.py`` writes weights and cards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from .errors import InpaintlabError
from .state_dict import load_weights
from .types import contract_of

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "lgnet_compact"  # the shipped default: fill, serve, the pipeline and the demo use it
CARD_FORMAT = "inpaintlab-model-card"


def pretrained_models() -> list[str]:
    """Names of registered generators that have shipped weights and a card, sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def has_weights(name: str) -> bool:
    """Whether generator ``name`` has shipped weights."""
    return name in pretrained_models()


def model_card(name: str, weights_dir: str | Path | None = None) -> dict[str, Any]:
    """The card of ``name``'s shipped weights (see the module docstring); ``weights_dir``: another folder than
    the package's (e.g. weights staged before they ship)."""
    folder = Path(weights_dir or WEIGHTS_DIR)
    path = folder / f"{name}.json"
    if not path.is_file() or not (folder / f"{name}.safetensors").is_file():
        raise InpaintlabError(f"{name!r} has no shipped weights; models with weights: {', '.join(pretrained_models())}")
    return json.loads(path.read_text())


def attached_card(model: nn.Module) -> dict[str, Any]:
    """The card ``load_pretrained_weights`` attached to ``model`` (its shipped weights'), or {}."""
    return (contract_of(model).checkpoint_header or {}).get("card") or {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pretrained_weights(model: nn.Module, name: str, weights_dir: str | Path | None = None) -> nn.Module:
    """Load ``name``'s shipped weights (fp16 on disk -> the model's dtype) into ``model`` and attach the card;
    ``weights_dir`` as in ``model_card``.

    The model must have been built with the card's kwargs (``create_model(name, pretrained=True)`` does so).
    """
    card = model_card(name, weights_dir)
    kwargs = contract_of(model).model_kwargs
    if kwargs != card["model"]["kwargs"]:
        raise InpaintlabError(f"pretrained {name} was trained with options {card['model']['kwargs']}; got {kwargs}")
    path = Path(weights_dir or WEIGHTS_DIR) / f"{name}.safetensors"
    expected = card.get("weights", {}).get("sha256")
    if expected and file_sha256(path) != expected:
        raise InpaintlabError(f"{path}: SHA-256 differs from its card's; the shipped weights are corrupt or were changed")
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for every kind of damage
        raise InpaintlabError(f"{path}: unreadable weights ({str(err).splitlines()[0]})") from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    load_weights(model, state, f"shipped weights of {name}", name)
    model.checkpoint_header = {"model": card["model"], "inference_size": card["inference_size"], "card": card}
    return model.eval()


__all__ = [
    "CARD_FORMAT",
    "attached_card",
    "DEFAULT_MODEL",
    "WEIGHTS_DIR",
    "file_sha256",
    "has_weights",
    "load_pretrained_weights",
    "model_card",
    "pretrained_models",
]

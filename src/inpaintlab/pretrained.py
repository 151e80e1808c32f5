"""Trained weights shipped inside the package, their model cards, and the one rule for answering a user.

``weights/<name>.safetensors`` holds the EMA generator of a training run in fp16 (tensors only) and
``weights/<name>.json`` its card: the model spec (name, kwargs), the size it works at, the data, steps,
wall time, the held-out table and the commands that made it. Nothing is downloaded, ever.

>>> "lgnet_compact" in pretrained_models()
True

``resolve_model(source)`` is how every tool that answers a user (``fill``, ``serve``, ``eval``, the
pipeline) turns a name or a file into a model: a checkpoint file, a classical method (no weights to
learn), or a network with shipped weights. A registered network without weights is an error naming the
models that have weights: an untrained network never answers silently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import InpaintlabError
from .types import ModelSpec, contract_of

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "lgnet_compact"  # the shipped default: fill, serve, the pipeline and the demo use it
CARD_FORMAT = "inpaintlab-model-card"


def pretrained_models() -> list[str]:
    """Names of registered generators that have shipped weights and a card, sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def has_weights(name: str) -> bool:
    """Whether generator ``name`` has shipped weights."""
    return name in pretrained_models()


def model_card(name: str) -> dict[str, Any]:
    """The card of ``name``'s shipped weights (see the module docstring)."""
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file() or not (WEIGHTS_DIR / f"{name}.safetensors").is_file():
        raise InpaintlabError(f"{name!r} has no shipped weights; models with weights: {_with_weights()}")
    return json.loads(path.read_text())


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pretrained_weights(model: nn.Module, name: str) -> nn.Module:
    """Load ``name``'s shipped weights (fp16 on disk -> the model's dtype) into ``model`` and attach the card.

    The model must have been built with the card's kwargs (``create_model(name, pretrained=True)`` does so).
    """
    from .checkpoint import load_weights

    card = model_card(name)
    kwargs = contract_of(model).model_kwargs
    if kwargs != card["model"]["kwargs"]:
        raise InpaintlabError(f"pretrained {name} was trained with options {card['model']['kwargs']}; got {kwargs}")
    path = WEIGHTS_DIR / f"{name}.safetensors"
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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, config: dict[str, Any], batches: int, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running mean/var of ``model`` on ``batches`` training batches of the run
    that made it (``config``: the checkpoint's training config: its data, masks and batch size).

    Why: running statistics estimated along the way belong to earlier weights (checkpoints written before the
    trainer averaged them in its EMA even took the live model's, which left EMA fills washed out until the
    learning rate decayed). The estimate is the plain average over the batches (momentum None), in train
    mode, without any weight update; nothing held out is used. Returns the number of BatchNorm layers
    recalibrated.
    """
    from .data import build_dataset, collate_samples
    from .masks import build_mask_source

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return 0
    data, masks = config["data"], config["masks"]
    source = build_mask_source(
        masks["source"], data["size"], margin=masks.get("margin", 0), drawn_size=masks.get("drawn_size", 0)
    )
    dataset = build_dataset(
        data["root"], size=data["size"], preprocess=data["preprocess"], flip=data["flip"], mask_source=source, seed=seed
    )
    order = np.random.default_rng(seed).permutation(len(dataset))
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    size = config["batch_size"]
    for b in range(batches):
        batch = collate_samples([dataset[int(order[(b * size + i) % len(order)])] for i in range(size)])
        model(batch.image, batch.mask)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


def write_pretrained(checkpoint: str | Path, out_dir: str | Path, card: dict[str, Any], bn_batches: int = 0) -> tuple[Path, Path]:
    """Ship a training checkpoint: its EMA generator (else the live one) as fp16 safetensors plus ``card``.

    ``bn_batches`` > 0 first re-estimates BatchNorm statistics on that many training batches
    (``recalibrate_batchnorm``). Writes ``out_dir/<model name>.safetensors`` and ``.json``; the card gets the
    model spec and step from the checkpoint header. Returns both paths.
    """
    from .checkpoint import load_checkpoint, load_weights, sub_state
    from .models import create_model

    tensors, header = load_checkpoint(checkpoint, prefixes=("generator_ema", "generator"))
    state = sub_state(tensors, "generator_ema") or sub_state(tensors, "generator")
    spec = ModelSpec.from_header(header.get("model"), str(checkpoint))
    name = spec.name
    if bn_batches:
        model = create_model(name, **spec.kwargs)
        load_weights(model, state, f"{checkpoint}: weights", name)
        card = {
            **card,
            "batchnorm": {
                "recalibrated_batches": bn_batches,
                "layers": recalibrate_batchnorm(model, header["config"], bn_batches),
                "batch_size": header["config"]["batch_size"],
            },
        }
        state = model.state_dict()
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights, card_path = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    save_file(half, str(weights))
    full = {
        "format": CARD_FORMAT,
        "model": spec.to_header(),
        "step": header["step"],
        "weights": {
            "file": weights.name,
            "dtype": "float16",
            "ema": bool(sub_state(tensors, "generator_ema")),
            "sha256": file_sha256(weights),
        },
        **card,
    }
    card_path.write_text(json.dumps(full, indent=2) + "\n")
    return weights, card_path


def resolve_model(source: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A model that may answer a user: checkpoint file, classical method, or network with shipped weights.

    Raises ``InpaintlabError`` for a network that has neither (naming the models that have weights) and
    for anything that is neither a file nor a registered name.
    """
    from .checkpoint import load_model
    from .models import create_model

    if Path(source).is_file():
        return load_model(source, device=device)
    kind = answerable_kind(str(source))
    return create_model(str(source), pretrained=kind == "pretrained").to(device)


def answerable_kind(name: str) -> str:
    """ "pretrained" or "classical" for a registered name that may answer a user; else ``InpaintlabError``."""
    from .models import is_model
    from .models.classical import CLASSICAL_MODELS

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
    from .models.classical import CLASSICAL_MODELS

    return ", ".join(pretrained_models() + [f"{name} (classical)" for name in CLASSICAL_MODELS])


__all__ = [
    "DEFAULT_MODEL",
    "WEIGHTS_DIR",
    "answerable_kind",
    "has_weights",
    "load_pretrained_weights",
    "model_card",
    "pretrained_models",
    "resolve_model",
    "write_pretrained",
]

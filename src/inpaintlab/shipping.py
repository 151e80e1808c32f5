"""Shipping trained weights (training-side tools): a training checkpoint's EMA generator as fp16 safetensors
plus its model card (``write_pretrained``), with BatchNorm statistics re-estimated on the run's own data
when asked (``recalibrate_batchnorm``). ``pretrained.py`` reads what this writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from .checkpoint import load_checkpoint, sub_state
from .data import build_dataset, collate_samples
from .errors import InpaintlabError
from .masks import build_mask_source
from .models import create_model
from .pretrained import CARD_FORMAT, file_sha256
from .state_dict import load_weights
from .types import ModelSpec


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


def write_pretrained(
    checkpoint: str | Path, out_dir: str | Path, card: dict[str, Any], bn_batches: int = 0, generator: str = "ema"
) -> tuple[Path, Path]:
    """Ship a training checkpoint: its EMA generator (else the live one; ``generator="live"``: the live one)
    as fp16 safetensors plus ``card``.

    ``bn_batches`` > 0 first re-estimates BatchNorm statistics on that many training batches
    (``recalibrate_batchnorm``). Writes ``out_dir/<model name>.safetensors`` and ``.json``; the card gets the
    model spec and step from the checkpoint header. Returns both paths.
    """
    if generator not in ("ema", "live"):
        raise InpaintlabError(f"generator must be 'ema' or 'live', got {generator!r}")
    tensors, header = load_checkpoint(checkpoint, prefixes=("generator_ema", "generator"))
    ema = sub_state(tensors, "generator_ema") if generator == "ema" else {}
    state = ema or sub_state(tensors, "generator")
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
            "ema": bool(ema),
            "sha256": file_sha256(weights),
        },
        **card,
    }
    card_path.write_text(json.dumps(full, indent=2) + "\n")
    return weights, card_path


__all__ = ["recalibrate_batchnorm", "write_pretrained"]

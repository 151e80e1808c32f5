"""Checkpoint files: safetensors tensors + one JSON header, written atomically, loaded without pickle.

Layout of the tensors (flat names):
  ``generator.<param>``       generator state_dict (always present)
  ``generator_ema.<param>``   EMA generator (when training used EMA; preferred by ``load_model``)
  ``optim.<name>.<i>.<key>``  optimiser tensors (``optimizer_parts``; the rest in the header)
  anything else               training state owned by ``train.py`` (discriminator, RNG...)
Header (``metadata["inpaintlab"]``, JSON): ``{"format", "version", "model": {"name", "kwargs"},
"config", "step", "code_version", "content_sha256", ...}``.
``content_sha256`` (written at save time since this field exists; older files lack it): SHA-256 over the
tensors in name order, each as its name, a NUL byte and its raw little-endian bytes. ``verify_checkpoint``
checks the safetensors header, every tensor's byte size against its dtype and shape, the file length and
that hash, reading the raw bytes from disk; a file without the hash is "readable, unverified".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .errors import InpaintlabError
from .state_dict import load_weights
from .types import ModelSpec

FORMAT = "inpaintlab-checkpoint"
VERSION = 1
_HEADER_KEY = "inpaintlab"
HASH_KEY = "content_sha256"
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def save_checkpoint(path: str | Path, tensors: dict[str, Tensor], header: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``header`` to ``path`` atomically (temp file in the same folder + rename).

    A crash or kill during the write leaves any previous file at ``path`` intact.
    """
    from .version import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": VERSION, "code_version": __version__, **header, HASH_KEY: content_hash(plain)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(plain, tmp, metadata={_HEADER_KEY: json.dumps(meta)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def content_hash(tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) of ``tensors``: in name order, each name, a NUL byte, its raw bytes (see module docstring)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0")
        digest.update(tensors[name].detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def verify_checkpoint(path: str | Path) -> tuple[dict[str, Any], bool]:
    """Check ``path`` from its bytes: ``(header, hashed)``; hashed False = readable but written before
    content hashes existed. Raises ``InpaintlabError`` saying what is wrong (cut short, sizes, hash...).

    Reads the whole file once (no tensor is built).
    """
    path = _existing(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise InpaintlabError(f"{path}: {size} bytes, too short for a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if 8 + length > size:
            raise InpaintlabError(f"{path}: cut short ({size} bytes; its header alone needs {8 + length})")
        try:
            table = json.loads(fh.read(length))
            header = json.loads(table.pop("__metadata__", {})[_HEADER_KEY])
        except (ValueError, KeyError, TypeError):
            raise InpaintlabError(f"{path}: not an inpaintlab checkpoint (unreadable header)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InpaintlabError(f"{path}: not an inpaintlab checkpoint (no {FORMAT} header)")
        spans, end = _tensor_spans(path, table)
        if 8 + length + end != size:
            raise InpaintlabError(
                f"{path}: {'cut short' if 8 + length + end > size else 'trailing bytes'} "
                f"({size} bytes; its header describes {8 + length + end})"
            )
        if HASH_KEY not in header:
            return header, False
        digest = hashlib.sha256()
        for name in sorted(spans):
            start, stop = spans[name]
            fh.seek(8 + length + start)
            digest.update(name.encode() + b"\0")
            digest.update(fh.read(stop - start))
    if digest.hexdigest() != header[HASH_KEY]:
        raise InpaintlabError(f"{path}: content hash mismatch (the tensors changed after saving)")
    return header, True


def _tensor_spans(path: Path, table: dict[str, Any]) -> tuple[dict[str, tuple[int, int]], int]:
    """name -> (start, stop) byte offsets of each tensor, checked against dtype x shape; and the data length."""
    spans = {}
    try:
        for name, entry in table.items():
            start, stop = (int(v) for v in entry["data_offsets"])
            expected = _DTYPE_BYTES[entry["dtype"]] * math.prod(int(d) for d in entry["shape"])
            if stop - start != expected:
                raise InpaintlabError(f"{path}: tensor {name} holds {stop - start} bytes, its dtype and shape need {expected}")
            spans[name] = (start, stop)
    except (KeyError, TypeError, ValueError):
        raise InpaintlabError(f"{path}: malformed safetensors header") from None
    ordered, position = sorted(spans.values()), 0
    for start, stop in ordered:
        if start != position:
            raise InpaintlabError(f"{path}: tensor data overlaps or leaves gaps (offset {start}, expected {position})")
        position = stop
    return spans, position


def verify_training_checkpoint(path: str | Path) -> tuple[dict[str, Any], bool]:
    """``verify_checkpoint`` + the header holds what a resume needs (step, optimisers, schedulers, RNG)."""
    header, hashed = verify_checkpoint(path)
    missing = [k for k in ("step", "epoch", "batch_index", "optimizers", "schedulers", "scaler", "rng") if k not in header]
    if missing:
        raise InpaintlabError(f"{path}: no training state to resume ({', '.join(missing)} missing)")
    return header, hashed


def step_of(path: str | Path) -> int:
    """N of a ``step_N.safetensors`` file name (-1 for other names)."""
    name = Path(path).name
    digits = name[len("step_") : -len(".safetensors")]
    return int(digits) if name.startswith("step_") and name.endswith(".safetensors") and digits.isdigit() else -1


def resumable_checkpoint(folder: str | Path) -> tuple[Path | None, dict | None, bool, list[tuple[Path, str]]]:
    """Newest ``step_*.safetensors`` in ``folder`` that passes ``verify_training_checkpoint``.

    Returns ``(path, header, hashed, skipped)``: skipped = [(newer path, reason)] passed over. path is
    None when no checkpoint passes (skipped then lists every one there is).
    """
    skipped = []
    for path in sorted(Path(folder).glob("step_*.safetensors"), key=step_of, reverse=True):
        try:
            header, hashed = verify_training_checkpoint(path)
        except InpaintlabError as err:
            skipped.append((path, str(err).removeprefix(f"{path}: ")))
            continue
        return path, header, hashed, skipped
    return None, None, False, skipped


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a checkpoint, without loading its tensors."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise InpaintlabError(f"{path} is not a readable inpaintlab checkpoint ({err})") from None
    if _HEADER_KEY not in meta:
        raise InpaintlabError(f"{path} is a safetensors file but not an inpaintlab checkpoint (no header)")
    try:
        header = json.loads(meta[_HEADER_KEY])
    except ValueError as err:
        raise InpaintlabError(f"{path}: the checkpoint's header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise InpaintlabError(f"{path}: the checkpoint's header is not a JSON object")
    return header


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", prefixes: tuple[str, ...] | None = None
) -> tuple[dict[str, Tensor], dict]:
    """Return ``(tensors, header)`` of a checkpoint written by ``save_checkpoint``.

    prefixes: read only the tensors under these prefixes (e.g. ``("generator",)`` for inference: a
    training checkpoint is mostly optimiser state, which is then never read from disk).
    """
    header = read_header(path)
    try:
        if prefixes is None:
            return load_file(str(path), device=str(device)), header
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            keys = [k for k in fh.keys() if k.split(".", 1)[0] in prefixes]
            return {k: fh.get_tensor(k) for k in keys}, header
    except (SafetensorError, OSError) as err:
        raise InpaintlabError(f"{path}: corrupt checkpoint ({err})") from None


def sub_state(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Tensors under ``prefix.`` with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_parts(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimiser state_dict into tensors ``optim.<name>.<param index>.<key>`` and a JSON rest."""
    state, tensors, plain = optimizer.state_dict(), {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{name}.{index}.{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "state": plain}


def load_optimizer_parts(optimizer: torch.optim.Optimizer, name: str, tensors: dict[str, Tensor], meta: dict) -> None:
    """Inverse of ``optimizer_parts``: restore ``optimizer`` from a checkpoint's tensors and its JSON ``meta``."""
    state: dict[int, dict] = {}
    for key, value in sub_state(tensors, f"optim.{name}").items():
        index, entry = key.split(".", 1)
        state.setdefault(int(index), {})[entry] = value
    for index, entries in meta["state"].items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> dict:
    """This process's RNG states: torch/CUDA as tensors, numpy/python as JSON-able lists."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    numpy_state = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Inverse of ``rng_state`` (the run then draws the same random numbers as the saved one)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def load_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
    """Build the generator a checkpoint describes and load its weights (EMA weights when present).

    Needs nothing but the file. The content hash written at save time is checked first (a corrupted or
    tampered file is a one-line error naming it). The model is returned in eval mode.
    """
    from .models import create_model

    verify_checkpoint(path)
    tensors, header = load_checkpoint(path, device, prefixes=("generator_ema", "generator") if ema else ("generator",))
    spec = ModelSpec.from_header(header.get("model"), str(path))  # the layout every checkpoint has used
    model = create_model(spec.name, **spec.kwargs)
    state = sub_state(tensors, "generator_ema") if ema else {}
    load_weights(model, state or sub_state(tensors, "generator"), f"{path}: weights", spec.name)
    model.checkpoint_header = header
    return model.to(device).eval()


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InpaintlabError(f"checkpoint not found: {path}")
    return path

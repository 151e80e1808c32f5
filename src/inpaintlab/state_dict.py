"""Loading a state dict into a module with an error that names what did not fit (a leaf module: checkpoints,
shipped weights and training all use it)."""

from __future__ import annotations

from torch import Tensor, nn

from .errors import InpaintlabError


def load_weights(module: nn.Module, state: dict[str, Tensor], what: str, target: str) -> None:
    """``module.load_state_dict(state)`` that names what did not fit in an ``InpaintlabError``."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        raise InpaintlabError(f"{what} do not fit {target} ({str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise InpaintlabError(f"{what} do not fit {target} (missing {missing[:3]}, unexpected {unexpected[:3]})")


__all__ = ["load_weights"]

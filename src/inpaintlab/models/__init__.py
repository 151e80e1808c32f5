"""Registered generators and discriminators (one file per method).

Model attributes read by the tools (optional, with defaults):
  ``size_multiple`` (int, default 1): H and W must be multiples of it (the pipeline pads).
  ``trainable`` (bool, default True): False for classical baselines (no parameters to train).
"""

from ._registry import (
    create_discriminator,
    create_model,
    is_model,
    list_discriminators,
    list_models,
    register_discriminator,
    register_model,
)
from . import classical  # noqa: F401  (registers telea, navier_stokes)
from . import lgnet, discriminators  # noqa: F401
from . import msanet  # noqa: F401
from . import srpnet  # noqa: F401
from . import cstfnet  # noqa: F401
from . import cicm  # noqa: F401
from . import lg_plugin  # noqa: F401  (registers <backbone>_lg: LGNet's refinement after a backbone)

__all__ = [
    "create_discriminator",
    "create_model",
    "is_model",
    "list_discriminators",
    "list_models",
    "register_discriminator",
    "register_model",
]

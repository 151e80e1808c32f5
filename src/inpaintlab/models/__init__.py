"""Registered generators and discriminators (one file per method).

Every generator derives from ``inpaintlab.types.InpaintModel`` and declares its contract there
(``size_multiple``, ``trainable``, ``exportable``, ``training_inputs``, ``aux_terms``, ``param_groups()``);
every discriminator derives from ``InpaintDiscriminator`` (``takes_mask``). The registry checks this and
records what it built as ``model.spec`` (``ModelSpec(name, kwargs)``), which checkpoints store.
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

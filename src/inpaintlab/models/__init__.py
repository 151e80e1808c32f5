"""Registered generators and discriminators (one file per method).

Every generator derives from ``inpaintlab.types.InpaintModel`` and declares its contract there
(``size_multiple``, ``trainable``, ``exportable``, ``training_inputs``, ``aux_terms``, ``param_groups()``);
every discriminator derives from ``InpaintDiscriminator`` (``takes_mask``). The registry checks this and
records what it built as ``model.spec`` (``ModelSpec(name, kwargs)``), which checkpoints store.
"""

# Importing a model file registers its factories; lg_plugin registers <backbone>_lg (LGNet's refinement
# after a backbone), classical registers telea and navier_stokes.
from . import cicm, classical, cstfnet, discriminators, lg_plugin, lgnet, msanet, srpnet  # noqa: F401
from ._registry import (
    create_discriminator,
    create_model,
    is_model,
    list_discriminators,
    list_models,
    register_discriminator,
    register_model,
)

__all__ = [
    "create_discriminator",
    "create_model",
    "is_model",
    "list_discriminators",
    "list_models",
    "register_discriminator",
    "register_model",
]

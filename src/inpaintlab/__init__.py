"""inpaintlab: faithful deep image inpainting — models, training, evaluation and tools.

Conventions: images (B,3,H,W) float in [0,1]; masks (B,1,H,W) float in {0,1} with 1 = hole.
"""

from .checkpoint import load_model
from .errors import InpaintlabError
from .models import create_discriminator, create_model, list_discriminators, list_models
from .pipeline import InpaintPipeline
from .types import InpaintOutput, Sample, composite
from .version import __version__

__all__ = [
    "InpaintOutput",
    "InpaintPipeline",
    "InpaintlabError",
    "Sample",
    "__version__",
    "composite",
    "create_discriminator",
    "create_model",
    "list_discriminators",
    "list_models",
    "load_model",
]

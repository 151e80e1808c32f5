"""``python -m inpaintlab.gpu_check``: see the package docstring."""

import sys

from .main import main

sys.exit(main())

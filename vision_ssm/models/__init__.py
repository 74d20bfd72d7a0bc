"""Floor 3: timm-registered reference models (importing this module registers them)."""
from . import mambavision  # noqa: F401  (registers mambavision_* with timm)

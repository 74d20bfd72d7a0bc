"""Floor 3: timm-registered reference models (importing this module registers them)."""
from . import (
    mambaad,  # noqa: F401  (registers mambaad_* with timm)
    mambaad_lite,  # noqa: F401  (registers mambaad_efficientnet_lite* with timm)
    mambavision,  # noqa: F401  (registers mambavision_* with timm)
    vmamba,  # noqa: F401  (registers vmamba_* with timm)
)
from ._official import convert_official, load_official, save_safetensors
from .vmamba import VMamba

"""Floor 3: timm-registered reference models (importing this module registers them)."""
from . import (
    fusion_mamba,  # noqa: F401  (registers fusion_mamba_* and test_fusion_mamba with timm)
    mambaad,  # noqa: F401  (registers mambaad_* with timm)
    mambaad_lite,  # noqa: F401  (registers mambaad_efficientnet_lite* with timm)
    mambaalign,  # noqa: F401  (registers mambaalign_* with timm)
    mambavision,  # noqa: F401  (registers mambavision_* with timm)
    vmamba,  # noqa: F401  (registers vmamba_* with timm)
)
from ._official import convert_official, load_official, save_safetensors
from .mambaalign import MambaAlign
from .vmamba import VMamba

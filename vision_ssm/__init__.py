"""vision-ssm: Mamba (selective state-space) building blocks for computer vision.

``import vision_ssm`` registers the reference models with timm. Optional accelerators
(triton, mamba-ssm, numba) and optional scan helpers are imported lazily, only when used.
"""
from . import layers, models, ops
from .version import __version__

__all__ = ["__version__", "layers", "models", "ops"]

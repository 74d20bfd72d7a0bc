"""Shared pytest setup: import vision_ssm before collection so its timm models are registered."""
import os

import vision_ssm  # noqa: F401  (registers models with timm)

os.environ.setdefault("MPLBACKEND", "Agg")

"""Shared pytest setup: import vision_ssm before collection so its timm models are registered."""
import os
import pathlib
import sys

import vision_ssm  # noqa: F401  (registers models with timm)

os.environ.setdefault("MPLBACKEND", "Agg")

# Shared test helpers (fixture paths, reference cases, fixture builders) live in tests/helpers/.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "helpers"))

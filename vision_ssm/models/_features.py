"""Feature-extraction helpers shared by the model families."""
from __future__ import annotations

# timm has it since 1.0.3 (below our floor) but does not export it publicly
from timm.models._features import feature_take_indices

__all__ = ["feature_take_indices"]

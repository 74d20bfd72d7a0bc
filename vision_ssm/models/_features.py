"""Feature-extraction helpers shared by the model families."""
from __future__ import annotations

from collections.abc import Sequence

try:  # timm >= 1.0.3 has it, but does not export it publicly
    from timm.models._features import feature_take_indices
except ImportError:  # pragma: no cover - timm < 1.0.3

    def feature_take_indices(num_features: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
        """Absolute indices to take (``None``: all, int: last n, sequence: explicit) and the largest."""
        indices = num_features if indices is None else indices
        if isinstance(indices, int):
            take = [num_features - indices + i for i in range(indices)]
        else:
            take = [num_features + i if i < 0 else i for i in indices]
        return take, max(take)

__all__ = ["feature_take_indices"]

"""Argument checks of the scan-geometry functions (grid sizes, direction counts), in one place.

Plain Python on ints (``torch.SymInt`` included), so ``torch.compile`` / ``torch.export`` trace through them.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch

__all__ = ["check_grid", "check_num_directions"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, torch.SymInt)) and not isinstance(value, bool)


def check_grid(H: Any, W: Any, owner: str) -> tuple[int, int]:
    """``(H, W)`` as ints ``>= 1``; a float (``2.5``), ``bool`` or string is refused, not truncated.

    Raises:
        TypeError: ``H`` or ``W`` is not an integer.
        ValueError: ``H`` or ``W`` is below 1.
    """
    if torch.jit.is_tracing():  # sizes are 0-d tensors under jit.trace; the trace records them as constants
        H, W = (int(v) if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in (H, W))
    for name, v in (("H", H), ("W", W)):
        if not _is_int(v):
            raise TypeError(f"{owner}: grid size {name} must be an int >= 1, got {v!r} ({type(v).__name__})")
        if v < 1:
            raise ValueError(f"{owner}: grid size {name} must be an int >= 1, got {v}")
    return int(H), int(W)


def check_num_directions(value: Any, owner: str, name: str = "num_directions") -> int:
    """The number of directions ``K`` as an int (its supported values are checked per family).

    Raises:
        TypeError: not an integer (e.g. the string ``'4'``).
    """
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an int (1, 2, 4 or 8; quadsnake: 1, 2 or 4), got {value!r} "
                        f"({type(value).__name__})")
    return int(value)

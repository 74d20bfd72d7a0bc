"""Scan orders (permutations of the H·W positions) and direction sets.

PROVISIONAL: only the ``sweep`` family is implemented here; the full set of families is
being written (issue 3). The public names and their contracts are final:

- ``scan_order(family, H, W) -> LongTensor (H*W,)``: raster index visited at each step.
- ``scan_directions(family, H, W, num_directions) -> LongTensor (K, H*W)``.
- ``get_directions(family, H, W, num_directions, device) -> DirectionSet`` (cached).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor


@dataclass(frozen=True)
class DirectionSet:
    """K scan directions over an H×W grid.

    Attributes:
        name: Readable name, e.g. ``"sweep-4"``.
        family: Scan family.
        H: Grid height.
        W: Grid width.
        index: ``(K, H*W)`` int64; ``index[k, t]`` is the raster position (``h*W + w``) visited
            at step ``t`` of direction ``k``.
        inverse: ``(K, H*W)`` int64; ``inverse[k, p]`` is the step at which direction ``k``
            visits raster position ``p``.
    """

    name: str
    family: str
    H: int
    W: int
    index: Tensor = field(repr=False)
    inverse: Tensor = field(repr=False)

    @property
    def K(self) -> int:
        return self.index.shape[0]

    @property
    def L(self) -> int:
        return self.H * self.W


def scan_order(family: str, H: int, W: int) -> Tensor:
    """Raster index visited at each step of the base order of ``family`` (``(H*W,)`` int64)."""
    if family != "sweep":
        raise NotImplementedError(f"scan family {family!r} not implemented yet")
    return torch.arange(H * W)


def scan_directions(family: str, H: int, W: int, num_directions: int) -> Tensor:
    """``(K, H*W)`` int64 direction orders; ``sweep``/4 is VMamba's cross-scan."""
    if family != "sweep" or num_directions not in (1, 2, 4):
        raise NotImplementedError(f"({family!r}, {num_directions}) not implemented yet")
    row = torch.arange(H * W)
    col = torch.arange(H * W).view(H, W).t().reshape(-1)
    dirs = [row, col, row.flip(0), col.flip(0)]
    if num_directions == 2:
        dirs = [row, row.flip(0)]
    return torch.stack(dirs[:num_directions])


@lru_cache(maxsize=256)
def _cached(family: str, H: int, W: int, K: int, device: str) -> DirectionSet:
    idx = scan_directions(family, H, W, K).to(device)
    inv = torch.argsort(idx, dim=1)
    return DirectionSet(f"{family}-{K}", family, H, W, idx, inv)


def get_directions(family: str, H: int, W: int, num_directions: int, device=None) -> DirectionSet:
    """Cached :class:`DirectionSet` on ``device``."""
    dev = str(torch.device(device)) if device is not None else "cpu"
    return _cached(family, H, W, num_directions, dev)

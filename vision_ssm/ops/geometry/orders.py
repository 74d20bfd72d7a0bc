"""Scan orders: which pixel each of the K scans of a 2-D map reads at each step.

A *scan order* is a permutation of the ``L = H*W`` raster positions: ``order[t]`` is the raster index
``h*W + w`` read at step ``t``. A *direction set* stacks K such orders, ``index (K, L)``, together
with their inverses; :func:`vision_ssm.ops.route` / :func:`vision_ssm.ops.merge` move a map into and
out of the K scan sequences.

Direction composition (MambaAD ``SS2D.forward_core``; ``blocks.md`` §2.3): the base curve of the
family is applied to four orientations of the map, each generated on the oriented grid's own shape
(so non-square maps work):

===  ===========================  =============================================
k    orientation                  oriented pixel ``[i, j]`` is original pixel
===  ===========================  =============================================
o0   identity (H×W)               ``[i, j]``
o1   transpose (W×H)              ``[j, i]``
o2   ``rot90(k=1)`` (W×H)         ``[j, W-1-i]``
o3   ``rot90(k=1)`` transposed    ``[i, W-1-j]`` (a horizontal flip)
===  ===========================  =============================================

and the stacked directions are ``K=1: [o0]``, ``K=2: [o0, rev o0]``, ``K=4: [o0, o1, rev o0, rev o1]``,
``K=8: [o0, o1, o2, o3, rev o0, rev o1, rev o2, rev o3]`` (``rev`` = full sequence reversal).
``sweep`` with K=4 is VMamba's cross-scan (row-major, column-major, both reversed).

``quadsnake`` is MambaAlign's QuadSnake (``blocks.md`` §2.5) and does not use that composition:
its K=4 routes are ``[snake, rev snake, diagsnake, rev diagsnake]``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._checks import check_grid, check_num_directions
from .curves import CURVE_FAMILIES

__all__ = [
    "FAMILIES",
    "FAMILY_ALIASES",
    "Walk",
    "canonical_family",
    "direction_walks",
    "walk_order",
    "oriented_positions",
    "scan_directions",
    "scan_order",
    "supported_directions",
]

#: Canonical family names.
FAMILIES: tuple[str, ...] = ("sweep", "snake", "zorder", "zigzag", "hilbert", "diagsnake", "quadsnake")
#: Accepted alternative names (MambaAD calls the snake ``scan``).
FAMILY_ALIASES: dict[str, str] = {"scan": "snake", "raster": "sweep", "boustrophedon": "snake", "morton": "zorder"}

_COMPOSED_K = (1, 2, 4, 8)
_QUADSNAKE_K = (1, 2, 4)
ORIENTATIONS: tuple[str, ...] = ("identity", "transpose", "rot90", "rot90_transpose")


def canonical_family(family: str) -> str:
    """Canonical name of a scan family (resolves aliases such as ``"scan"`` → ``"snake"``).

    Raises:
        TypeError: ``family`` is not a string.
        ValueError: unknown family.
    """
    if not isinstance(family, str):
        raise TypeError(f"scan family must be a string (one of {', '.join(FAMILIES)}), got {family!r} "
                        f"({type(family).__name__})")
    name = family.lower()
    name = FAMILY_ALIASES.get(name, name)
    if name not in FAMILIES:
        known = ", ".join(FAMILIES + tuple(FAMILY_ALIASES))
        raise ValueError(f"unknown scan family {family!r}; known: {known}")
    return name


def supported_directions(family: str) -> tuple[int, ...]:
    """The numbers of directions ``K`` a family can be stacked into."""
    return _QUADSNAKE_K if canonical_family(family) == "quadsnake" else _COMPOSED_K


def scan_order(family: str, H: int, W: int) -> Tensor:
    """Base scan order of a family on an H×W grid.

    Args:
        family: One of :data:`FAMILIES` or an alias (``"scan"`` = ``"snake"``).
        H: Grid height (``>= 1``).
        W: Grid width (``>= 1``).

    Returns:
        ``(H*W,)`` int64 CPU tensor; entry ``t`` is the raster index ``h*W + w`` visited at step
        ``t``. For ``quadsnake`` this is its route 0 (the row serpentine).

    Raises:
        TypeError: ``H`` or ``W`` is not an int (``2.5`` is refused, not truncated).
        ValueError: unknown family, or ``H``/``W`` below 1.

    Example:
        >>> from vision_ssm.ops import scan_order
        >>> scan_order("snake", 2, 3).tolist()          # row 0 left to right, row 1 right to left
        [0, 1, 2, 5, 4, 3]
        >>> scan_order("hilbert", 4, 4).tolist()
        [0, 1, 5, 4, 8, 12, 13, 9, 10, 14, 15, 11, 7, 6, 2, 3]
    """
    fam = canonical_family(family)
    H, W = check_grid(H, W, "scan_order")
    if fam == "quadsnake":
        fam = "snake"
    return CURVE_FAMILIES[fam](H, W)


def oriented_positions(H: int, W: int, orientation: str) -> Tensor:
    """Original raster index of every pixel of an oriented view of an H×W map.

    Args:
        H: Height of the original map.
        W: Width of the original map.
        orientation: ``"identity"``, ``"transpose"``, ``"rot90"`` (``torch.rot90(k=1)`` over
            (H, W)) or ``"rot90_transpose"``.

    Returns:
        ``(H', W')`` int64 tensor (``(H, W)`` or ``(W, H)``) whose entry ``[i, j]`` is the raster
        index in the original map of the oriented map's pixel ``[i, j]``.
    """
    grid = torch.arange(H * W, dtype=torch.int64).view(H, W)
    if orientation == "identity":
        return grid
    if orientation == "transpose":
        return grid.t()
    if orientation == "rot90":
        return torch.rot90(grid, 1, (0, 1))
    if orientation == "rot90_transpose":
        return torch.rot90(grid, 1, (0, 1)).t()
    raise ValueError(f"unknown orientation {orientation!r}; known: {ORIENTATIONS}")


def _oriented_order(family: str, H: int, W: int, orientation: str) -> Tensor:
    pos = oriented_positions(H, W, orientation)
    return pos.reshape(-1)[scan_order(family, pos.shape[0], pos.shape[1])]


def scan_directions(family: str, H: int, W: int, num_directions: int) -> Tensor:
    """The K visit orders of a direction set, in MambaAD's direction order.

    Args:
        family: Scan family or alias.
        H: Grid height.
        W: Grid width.
        num_directions: K; 1, 2, 4 or 8 (``quadsnake``: 1, 2 or 4).

    Returns:
        ``(K, H*W)`` int64 CPU tensor; row ``k`` is the visit order of direction ``k`` (raster
        indices of the original map), :func:`walk_order` of ``direction_walks(family, K)[k]``.
        ``sweep``/4 is VMamba's cross-scan.
    """
    H, W = check_grid(H, W, "scan_directions")
    return torch.stack([walk_order(w, H, W) for w in direction_walks(family, num_directions)])


def walk_order(walk: Walk, H: int, W: int) -> Tensor:
    """The ``(H*W,)`` visit order (raster indices of the H×W map) of one :class:`Walk`."""
    order = _oriented_order(walk.curve, H, W, walk.orientation)
    return order.flip(0) if walk.reversed else order


class Walk(NamedTuple):
    """How one direction of a built-in set walks the grid (what kernels read instead of the index).

    Attributes:
        curve: Base curve family walked (``"sweep"``, ``"hilbert"``, ``"diagsnake"``, ...).
        orientation: View of the map the curve is drawn on (one of :data:`ORIENTATIONS`).
        reversed: Whether the whole sequence is walked backwards.
    """

    curve: str
    orientation: str
    reversed: bool

    @property
    def raster(self) -> bool:
        """A plain row-major (``identity``) or column-major (``transpose``) raster walk."""
        return self.curve == "sweep" and self.orientation in ("identity", "transpose")

    @property
    def column_major(self) -> bool:
        """Walks down the columns (the ``transpose`` orientation)."""
        return self.orientation == "transpose"


def direction_walks(family: str, num_directions: int) -> tuple[Walk, ...]:
    """The :class:`Walk` of every direction of :func:`scan_directions` ``(family, K)``, in its order.

    Row ``k`` of ``scan_directions(family, H, W, K)`` is the curve ``walks[k].curve`` drawn on the
    ``walks[k].orientation`` view of the map, reversed if ``walks[k].reversed``.
    """
    fam = canonical_family(family)
    K = check_num_directions(num_directions, "direction_walks")
    if K not in supported_directions(fam):
        raise ValueError(f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {K}")
    if fam == "quadsnake":
        routes = [Walk("snake", "identity", False), Walk("snake", "identity", True),
                  Walk("diagsnake", "identity", False), Walk("diagsnake", "identity", True)]
        return tuple(routes[:K])
    n_base = {1: 1, 2: 1, 4: 2, 8: 4}[K]
    base = [Walk(fam, o, False) for o in ORIENTATIONS[:n_base]]
    if K == 1:
        return tuple(base)
    return tuple(base + [Walk(w.curve, w.orientation, True) for w in base])

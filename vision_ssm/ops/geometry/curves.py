"""Space-filling and serpentine curves over an H×W grid, as permutations of raster positions.

Every function here returns a ``(H*W,)`` int64 CPU tensor ``order`` with ``order[t]`` = the raster
index ``h*W + w`` visited at step ``t``. All of them are defined for any ``H, W >= 1``.

Generation is vectorised over positions (it may loop over bits of the coordinates, never over
positions). The results are cached by the callers (:func:`vision_ssm.ops.get_directions`).

Families (``scan_type`` names of MambaAD in brackets):

- ``sweep`` (``sweep``): raster order.
- ``snake`` (``scan``): boustrophedon; even rows left→right, odd rows right→left.
- ``zigzag`` (``zigzag``): JPEG zigzag over anti-diagonals ``s = h + w``; even ``s`` is walked
  bottom-left → top-right, odd ``s`` top-right → bottom-left.
- ``diagsnake``: MambaAlign's anti-diagonal serpentine (QuadSnake route 2); even ``s`` walked
  top → bottom, odd ``s`` bottom → top. On square grids it is the transpose of ``zigzag``.
- ``zorder`` (``zorder``): Morton order; the column takes the even bits and the row the odd bits
  of the step index.
- ``hilbert`` (``hilbert``): Skilling's Hilbert curve (the curve of numpy-hilbert-curve), with
  the column as the first axis and the row as the second.

**Any-size rule.** ``zorder`` and ``hilbert`` are generated on the enclosing power-of-two square
of side ``S = 2**ceil(log2(max(H, W)))`` anchored at the top-left pixel, and filtered to the
in-grid positions (the order of the full curve restricted to the grid). On an ``S×S`` grid this is
exactly the upstream curve. The other families are defined directly on any H×W.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "CURVE_FAMILIES",
    "diagsnake_order",
    "enclosing_bits",
    "hilbert_index",
    "hilbert_order",
    "morton_index",
    "snake_order",
    "sweep_order",
    "zigzag_order",
    "zorder_order",
]


def _check_size(H: int, W: int) -> None:
    if int(H) != H or int(W) != W or H < 1 or W < 1:
        raise ValueError(f"grid size must be positive integers, got H={H}, W={W}")


def _grid(H: int, W: int) -> tuple[Tensor, Tensor]:
    """Row and column coordinate of every raster position, each ``(H*W,)`` int64."""
    p = torch.arange(H * W, dtype=torch.int64)
    return p.div(W, rounding_mode="floor"), p.remainder(W)


def enclosing_bits(H: int, W: int) -> int:
    """Number of bits ``b`` such that ``2**b`` is the smallest power of two ``>= max(H, W)``."""
    return max(int(max(H, W)) - 1, 0).bit_length()


def sweep_order(H: int, W: int) -> Tensor:
    """Raster (row-major) order: ``arange(H*W)``."""
    _check_size(H, W)
    return torch.arange(H * W, dtype=torch.int64)


def snake_order(H: int, W: int) -> Tensor:
    """Boustrophedon order: even rows left→right, odd rows right→left (MambaAD ``scan``)."""
    _check_size(H, W)
    grid = torch.arange(H * W, dtype=torch.int64).view(H, W).clone()
    grid[1::2] = grid[1::2].flip(1)
    return grid.reshape(-1)


def _antidiagonal_order(H: int, W: int, even_by_column: bool) -> Tensor:
    """Anti-diagonal serpentine.

    Positions are grouped by ``s = h + w`` (in increasing ``s``); within a diagonal they are
    sorted by ascending column when ``(s is even) == even_by_column``, else by ascending row.
    """
    _check_size(H, W)
    h, w = _grid(H, W)
    s = h + w
    by_column = (s.remainder(2) == 0) == even_by_column
    within = torch.where(by_column, w, h)
    key = s * (H + W) + within
    return torch.argsort(key, stable=True)


def zigzag_order(H: int, W: int) -> Tensor:
    """JPEG zigzag (MambaAD ``zigzag``): even anti-diagonals bottom-left→top-right, odd ones reversed."""
    return _antidiagonal_order(H, W, even_by_column=True)


def diagsnake_order(H: int, W: int) -> Tensor:
    """MambaAlign's anti-diagonal serpentine (QuadSnake route 2): even anti-diagonals top→bottom."""
    return _antidiagonal_order(H, W, even_by_column=False)


def morton_index(row: Tensor, col: Tensor, bits: int) -> Tensor:
    """Z-order (Morton) code with ``col`` on the even bits and ``row`` on the odd bits.

    Args:
        row: int64 tensor of row coordinates in ``[0, 2**bits)``.
        col: int64 tensor of column coordinates, same shape.
        bits: Bits per coordinate.

    Returns:
        int64 tensor of codes, same shape.
    """
    code = torch.zeros_like(row)
    for b in range(bits):
        code |= ((col >> b) & 1) << (2 * b)
        code |= ((row >> b) & 1) << (2 * b + 1)
    return code


def hilbert_index(axes: list[Tensor], bits: int) -> Tensor:
    """Index along Skilling's Hilbert curve (J. Skilling, AIP Conf. Proc. 707, 2004) of integer points.

    The convention is that of numpy-hilbert-curve's ``encode``: ``axes[0]`` is the most significant
    axis of the interleaved "transpose" representation.

    Args:
        axes: ``n`` int64 tensors of the same shape, coordinates in ``[0, 2**bits)``.
        bits: Bits per coordinate.

    Returns:
        int64 tensor of Hilbert indices in ``[0, 2**(n*bits))``, same shape as each axis.
    """
    n = len(axes)
    x = [a.clone() for a in axes]
    if bits == 0:
        return torch.zeros_like(x[0])
    # Inverse undo: walk the levels from the most significant bit down.
    q = 1 << (bits - 1)
    while q > 1:
        p = q - 1
        for i in range(n):
            hit = (x[i] & q) != 0
            # where the bit is set: invert the low bits of axis 0
            inverted = x[0] ^ p
            # elsewhere: exchange the low bits of axis 0 and axis i
            t = (x[0] ^ x[i]) & p
            new0 = torch.where(hit, inverted, x[0] ^ t)
            if i != 0:
                x[i] = torch.where(hit, x[i], x[i] ^ t)
            x[0] = new0
        q >>= 1
    # Gray encode.
    for i in range(1, n):
        x[i] = x[i] ^ x[i - 1]
    t = torch.zeros_like(x[0])
    q = 1 << (bits - 1)
    while q > 1:
        t = torch.where((x[n - 1] & q) != 0, t ^ (q - 1), t)
        q >>= 1
    x = [xi ^ t for xi in x]
    # Interleave the transposed representation: bit b of axis i -> position b*n + (n-1-i).
    code = torch.zeros_like(x[0])
    for b in range(bits):
        for i in range(n):
            code |= ((x[i] >> b) & 1) << (b * n + (n - 1 - i))
    return code


def zorder_order(H: int, W: int) -> Tensor:
    """Z-order (MambaAD ``zorder``): Morton order on the enclosing power-of-two square, filtered.

    Step ``t`` of the full curve visits column = even bits of ``t``, row = odd bits of ``t``.
    """
    _check_size(H, W)
    h, w = _grid(H, W)
    return torch.argsort(morton_index(h, w, enclosing_bits(H, W)))


def hilbert_order(H: int, W: int) -> Tensor:
    """Hilbert order (MambaAD ``hilbert``): Skilling's curve on the enclosing power-of-two square, filtered.

    On an ``S×S`` grid (``S`` a power of two) this equals
    ``hilbert.decode(arange(S*S), 2, log2(S))`` of numpy-hilbert-curve with raster index
    ``p[0] + p[1]*S`` (column first), as MambaAD's ``HSCANS`` uses it: it starts at the top-left
    pixel and ends at the top-right one.
    """
    _check_size(H, W)
    h, w = _grid(H, W)
    return torch.argsort(hilbert_index([w, h], enclosing_bits(H, W)))


CURVE_FAMILIES = {
    "sweep": sweep_order,
    "snake": snake_order,
    "zorder": zorder_order,
    "zigzag": zigzag_order,
    "hilbert": hilbert_order,
    "diagsnake": diagsnake_order,
}

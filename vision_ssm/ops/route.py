"""Route a 2-D map into K scan sequences and merge K sequences back (adjoint pair).

PROVISIONAL implementation (issue 3 finalises it); signatures are final.
"""
from __future__ import annotations

from torch import Tensor

from .scan_orders import DirectionSet


def route(x: Tensor, dirs: DirectionSet, channels_last: bool = False) -> Tensor:
    """Gather a map into K sequences.

    Args:
        x: ``(B, D, H, W)`` (or ``(B, H, W, D)`` if ``channels_last``).
        dirs: Direction set over the same H×W.

    Returns:
        ``(B, K, D, L)`` with ``out[b, k, :, t] = x[b, :, p]`` where ``p = dirs.index[k, t]``.
    """
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    B, D, H, W = x.shape
    flat = x.reshape(B, 1, D, H * W)
    idx = dirs.index.to(x.device)
    return flat.expand(B, dirs.K, D, H * W).gather(3, idx[None, :, None, :].expand(B, dirs.K, D, H * W))


def merge(y: Tensor, dirs: DirectionSet, channels_last: bool = False) -> Tensor:
    """Scatter K sequences back onto the grid and sum them (the adjoint of :func:`route`).

    Args:
        y: ``(B, K, D, L)``.
        dirs: The direction set used to route.

    Returns:
        ``(B, D, H, W)`` (or ``(B, H, W, D)`` if ``channels_last``).
    """
    B, K, D, L = y.shape
    inv = dirs.inverse.to(y.device)
    out = y.gather(3, inv[None, :, None, :].expand(B, K, D, L)).sum(1).view(B, D, dirs.H, dirs.W)
    return out.permute(0, 2, 3, 1) if channels_last else out


def gather_directions(t: Tensor, dirs: DirectionSet) -> Tensor:
    """Put per-direction pixel-domain tensors into scan order.

    Args:
        t: ``(B, K, C, L)`` where slice ``k`` is in raster (pixel) order.
        dirs: Direction set with the same K and L.

    Returns:
        ``(B, K, C, L)`` with ``out[b, k, :, s] = t[b, k, :, dirs.index[k, s]]``.
    """
    B, K, C, L = t.shape
    idx = dirs.index.to(t.device)
    return t.gather(3, idx[None, :, None, :].expand(B, K, C, L))

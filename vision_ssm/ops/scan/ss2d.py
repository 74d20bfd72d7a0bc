"""The 2-D selective-scan core of SS2D-style blocks: route → K-direction scan → merge.

All inputs are in the *pixel domain* (raster order, ``L = H*W``); the op walks each direction's
order itself. The generic path materialises the K routed copies and calls
:func:`vision_ssm.ops.selective_scan` once with ``G = K`` groups; a fused backend (Triton) may
instead read the map once and write the merged output directly. Both give the same result.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import DirectionSet, gather_directions, merge
from .api import selective_scan
from .registry import backend_for_call

#: Largest state size for which numba's channel-last fused CPU core is used (it vectorises over
#: channels; with many states per channel its channel-first kernel is faster).
NUMBA_CHANNEL_LAST_MAX_N = 4


def ss2d_channels_last(device: torch.device, backend: str | None, d_state: int, needs_grad: bool) -> bool:
    """Whether :func:`ss2d_scan` is fastest on channel-last inputs (unit channel stride) for such a call.

    True for the fused Triton core on CUDA, and on CPU for numba's fused core when no gradient is
    needed and ``d_state ≤`` :data:`NUMBA_CHANNEL_LAST_MAX_N`. Either layout gives the same result;
    this only picks the one that avoids copies.

    Args:
        device: Device of the map.
        backend: The caller's explicit backend (``None``: automatic).
        d_state: The state size ``N``.
        needs_grad: Whether the call will need gradients.
    """
    if device.type == "cuda":
        return True
    if needs_grad or d_state > NUMBA_CHANNEL_LAST_MAX_N or torch.compiler.is_compiling():
        return False
    return backend_for_call(device, backend).name == "numba"


def check_ss2d_shapes(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, dirs: DirectionSet) -> None:
    """Raise ``ValueError`` naming the argument unless the shapes fit :func:`ss2d_scan`'s contract (also
    called by the fused backends, which can be called directly)."""
    Bt, Dm, L = x.shape
    K, N = dirs.K, A.shape[-1]
    if L != dirs.L:
        raise ValueError(f"ss2d_scan: x has L={L} but the direction set is {dirs.H}x{dirs.W}")
    if tuple(delta.shape) != (Bt, K, Dm, L):
        raise ValueError(f"ss2d_scan: delta must be (B, K, D, L)={(Bt, K, Dm, L)}, got {tuple(delta.shape)}")
    for name, M in (("B", B), ("C", C)):
        if tuple(M.shape) != (Bt, K, N, L):
            raise ValueError(f"ss2d_scan: {name} must be (B, K, N, L)={(Bt, K, N, L)}, got {tuple(M.shape)}")
    if tuple(A.shape) != (K * Dm, N):
        raise ValueError(f"ss2d_scan: A must be (K*D, N)={(K * Dm, N)}, got {tuple(A.shape)}")


def ss2d_scan(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    dirs: DirectionSet,
    delta_softplus: bool = True,
    *,
    backend: str | None = None,
) -> Tensor:
    """K-direction selective scan of a 2-D map, summed back onto the grid.

    Args:
        x: ``(Bt, D, L)`` the map, channel-first, raster order (``L = dirs.H * dirs.W``).
        delta: ``(Bt, K, D, L)`` per-direction step sizes, pixel domain.
        A: ``(K*D, N)``; channel ``k*D + d`` belongs to direction ``k``.
        B: ``(Bt, K, N, L)`` per-direction input projections, pixel domain.
        C: ``(Bt, K, N, L)`` per-direction output projections, pixel domain.
        D: Optional skip ``(K*D,)``.
        delta_bias: Optional ``(K*D,)``.
        dirs: The K scan directions over the H×W grid.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        backend: Selective-scan backend (see :func:`vision_ssm.ops.selective_scan`).

    Returns:
        ``(Bt, D, L)`` in ``x``'s dtype: ``Σ_k`` (scan of direction ``k``) mapped back to pixels.
    """
    check_ss2d_shapes(x, delta, A, B, C, dirs)
    fused = backend_for_call(x.device, backend).load_ss2d()
    if fused is not None:
        return fused(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus)
    return route_scan_merge(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus, backend)


def route_scan_merge(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                     delta_bias: Tensor | None, dirs: DirectionSet, delta_softplus: bool,
                     backend: str | None) -> Tensor:
    """The unfused SS2D core (shapes as :func:`ss2d_scan`, already checked): route the K copies, run
    ``backend``'s 1-D :func:`~vision_ssm.ops.selective_scan` on them, merge back to pixels. Fused cores
    fall back to it where they do not apply (e.g. numba's when a gradient is needed)."""
    Bt, Dm, L = x.shape
    K = dirs.K
    xs = gather_directions(x.unsqueeze(1).expand(Bt, K, Dm, L), dirs).reshape(Bt, K * Dm, L)
    ds = gather_directions(delta, dirs).reshape(Bt, K * Dm, L)
    Bs = gather_directions(B, dirs)
    Cs = gather_directions(C, dirs)
    ys = selective_scan(xs, ds, A, Bs, Cs, D, None, delta_bias, delta_softplus, backend=backend)
    return merge(ys.view(Bt, K, Dm, L), dirs).reshape(Bt, Dm, L)

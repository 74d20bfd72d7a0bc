"""Fused SS2D core of the ``numba`` backend (CPU inference): route → K-direction scan → merge in one kernel.

:func:`ss2d_scan_numba` follows :func:`vision_ssm.ops.ss2d_scan`'s contract. Without gradients it
runs :func:`.kernels.ss2d_fwd`, which reads the pixel-domain map at the pixels each direction
visits and adds every direction's output straight into the merged map: the K routed copies of
``x``, ``delta``, ``B`` and ``C`` and the scan-order output are never materialised (on CPU the
route gathers and merge scatter cost about as much as the scan itself). When a gradient is needed,
or while ``torch.compile`` / ``torch.export`` records, it takes the generic path (route, the numba
scan with its hand-written backward, merge), so results and gradients are those of the unfused op.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..geometry import DirectionSet
from ..scan.prologue import compute_dtype
from ..scan.ss2d import NUMBA_CHANNEL_LAST_MAX_N, check_ss2d_shapes, route_scan_merge
from ..scan.tracing import under_tracing
from .core import _kernels, _np


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def ss2d_scan_numba(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    dirs: DirectionSet,
    delta_softplus: bool = True,
) -> Tensor:
    """Fused SS2D core on CPU (numba); arguments, shapes and returns as :func:`vision_ssm.ops.ss2d_scan`.

    Every tensor is in the pixel domain: ``x`` ``(Bt, D, L)``, ``delta`` ``(Bt, K, D, L)``, ``A``
    ``(K*D, N)``, ``B``/``C`` ``(Bt, K, N, L)``, ``D``/``delta_bias`` ``(K*D,)``. Fused only without
    gradients and outside tracing; otherwise the unfused route → scan → merge.
    """
    if x.device.type != "cpu":
        raise RuntimeError(f"the numba backend runs on CPU tensors only, got {x.device}")
    check_ss2d_shapes(x, delta, A, B, C, dirs)
    Bt, Dm, L = x.shape
    N = A.shape[-1]
    if _needs_grad(x, delta, A, B, C, D, delta_bias) or under_tracing(x):
        return route_scan_merge(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus, "numba")
    ct = compute_dtype(x.dtype)
    if x.stride(1) == 1 and Dm > 1 and N <= NUMBA_CHANNEL_LAST_MAX_N:  # channel-last: vectorised over channels
        return _fused_channel_last(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus, ct)
    with torch.autocast("cpu", enabled=False):
        xc, dc, Ac = (t.to(ct) for t in (x, delta, A))
        Bc, Cc = (M.to(ct).transpose(2, 3) for M in (B, C))  # (Bt, K, L, N)
        out = torch.empty(Bt, Dm, L, dtype=ct)
        _kernels().ss2d_fwd(_np(xc), _np(dc), _np(Ac), _np(Bc), _np(Cc), *_tail_args(D, delta_bias, dirs, ct),
                            bool(delta_softplus), out.numpy())
    return out.to(x.dtype)


def _tail_args(D: Tensor | None, delta_bias: Tensor | None, dirs: DirectionSet, ct: torch.dtype) -> tuple:
    """The kernels' ``Dv, bias, idx, has_d, has_bias`` arguments (size-1 dummies for absent inputs)."""
    dummy = torch.zeros(1, dtype=ct)
    Dc = dummy if D is None else D.to(ct)
    bc = dummy if delta_bias is None else delta_bias.to(ct)
    return _np(Dc), _np(bc), _np(dirs.index_as("cpu")), D is not None, delta_bias is not None


def _channel_block(Bt: int, Dm: int) -> int:
    """Channels per task of the channel-last kernel: as many as keep every thread busy, a multiple of 8.

    Per-step overhead favours large blocks; the blocking never changes a result (channels are
    independent), so it may follow the thread count."""
    import numba

    tasks_per_batch = max(1, math.ceil(numba.get_num_threads() / Bt))
    return max(8, math.ceil(math.ceil(Dm / tasks_per_batch) / 8) * 8)


def _fused_channel_last(x, delta, A, B, C, D, delta_bias, dirs: DirectionSet, delta_softplus: bool, ct) -> Tensor:
    """The fused forward on channel-last memory: ``x`` ``(Bt, L, D)``, ``delta`` ``(Bt, L, K, D)``, ``B``/``C``
    ``(Bt, L, K, N)`` (copied only where the given strides differ); returns ``(Bt, D, L)`` with unit channel
    stride (memory ``(Bt, L, D)``)."""
    Bt, Dm, L = x.shape
    K, N = dirs.K, A.shape[-1]
    with torch.autocast("cpu", enabled=False):
        xc = x.to(ct).transpose(1, 2)
        dc = delta.to(ct).permute(0, 3, 1, 2)
        Bc, Cc = (M.to(ct).permute(0, 3, 1, 2) for M in (B, C))
        A_knd = A.to(ct).view(K, Dm, N).transpose(1, 2)
        out = torch.empty(Bt, L, Dm, dtype=ct)
        _kernels().ss2d_fwd_cl(_np(xc), _np(dc), _np(A_knd), _np(Bc), _np(Cc), *_tail_args(D, delta_bias, dirs, ct),
                               bool(delta_softplus), _channel_block(Bt, Dm), out.numpy())
    return out.to(x.dtype).transpose(1, 2)

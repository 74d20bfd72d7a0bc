"""The ``numba`` selective-scan backend: compiled CPU loops, forward and hand-written backward.

Install with ``pip install "vision-ssm[cpu]"``. numba is imported only when this backend runs
(never by ``import vision_ssm``); the kernels are compiled on first use and cached on disk
(``cache=True``), so later processes start quickly.

The forward is a plain sequential loop per ``(batch, channel)`` (parallel over them) that
keeps the ``N`` states in registers and stores the state at every chunk start (every ``T``
steps). The backward recomputes one chunk at a time from those states and runs the adjoint
recurrence in reverse, so the memory saved for backward is O(B·D·N·L/T). It is
deterministic: cross-channel sums go through per-block partial buffers reduced in a fixed order.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._scan_common import run_with_core

#: Steps between saved states (memory O(B·D·N·L/T); the backward buffer is (T+1)·N per thread).
CHUNK = 64
#: Aim for at least this many parallel backward tasks (only the shapes decide the split, so the
#: result does not depend on the number of threads).
MIN_TASKS = 16


def _kernels():
    from . import _numba_kernels  # noqa: PLC0415  (lazy: imports numba)

    return _numba_kernels


def _np(t: Tensor):
    return t.detach().contiguous().numpy()


def _bc_arg(M: Tensor) -> Tensor:
    """Canonical B/C -> kernel layout: variable ``(Bt, G, L, N)``, constant ``(1, 1, D, N)``."""
    if M.dim() == 4:
        return M.transpose(2, 3).contiguous()
    return M.reshape(1, 1, *M.shape).contiguous()


def _block_size(Bt: int, Dm: int, B: Tensor, C: Tensor) -> int:
    """Channels per backward task: a divisor of every group size, small enough for MIN_TASKS tasks."""
    g = Dm
    for M in (B, C):
        if M.dim() == 4:
            g = math.gcd(g, Dm // M.shape[1])
    bs = g
    for k in range(1, g + 1):  # smallest split of a group giving enough tasks
        if g % k == 0:
            bs = g // k
            if Bt * (Dm // bs) >= MIN_TASKS:
                break
    return bs


class NumbaScanFn(torch.autograd.Function):
    """Core scan ``(u, δ, A, B, C) -> (y, last_state)`` on compute-dtype CPU tensors."""

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor):
        k = _kernels()
        Bt, Dm, L = u.shape
        N = A.shape[1]
        nc = max(1, -(-L // CHUNK))
        u, dt, A = u.contiguous(), dt.contiguous(), A.contiguous()
        Bk, Ck = _bc_arg(B), _bc_arg(C)
        y = u.new_empty(Bt, Dm, L)
        hs = u.new_empty(Bt, Dm, nc, N)
        last = u.new_zeros(Bt, Dm, N)
        k.scan_fwd(_np(u), _np(dt), _np(A), _np(Bk), _np(Ck), B.dim() == 4, C.dim() == 4, CHUNK,
                   y.numpy(), hs.numpy(), last.numpy())
        ctx.save_for_backward(u, dt, A, B, C, hs)
        return y, last

    @staticmethod
    def backward(ctx, gy: Tensor, glast: Tensor | None):
        k = _kernels()
        u, dt, A, B, C, hs = ctx.saved_tensors
        Bt, Dm, L = u.shape
        N = A.shape[1]
        var_b, var_c = B.dim() == 4, C.dim() == 4
        bs = _block_size(Bt, Dm, B, C)
        nblk = Dm // bs
        gy = gy.to(u.dtype).contiguous()
        glast = u.new_zeros(Bt, Dm, N) if glast is None else glast.to(u.dtype).contiguous()
        du = u.new_empty(Bt, Dm, L)
        ddt = u.new_empty(Bt, Dm, L)
        dA = u.new_zeros(Bt, Dm, N)
        dummy4, dummy3 = u.new_zeros(1, 1, 1, 1), u.new_zeros(1, 1, 1)
        dB_var = u.new_zeros(Bt, nblk, L, N) if var_b else dummy4
        dC_var = u.new_zeros(Bt, nblk, L, N) if var_c else dummy4
        dB_const = dummy3 if var_b else u.new_zeros(Bt, Dm, N)
        dC_const = dummy3 if var_c else u.new_zeros(Bt, Dm, N)
        k.scan_bwd(_np(u), _np(dt), _np(A), _np(_bc_arg(B)), _np(_bc_arg(C)), var_b, var_c, CHUNK,
                   _np(hs), gy.numpy(), glast.numpy(), bs,
                   du.numpy(), ddt.numpy(), dA.numpy(), dB_var.numpy(), dC_var.numpy(),
                   dB_const.numpy(), dC_const.numpy())

        def reduce_var(part: Tensor, M: Tensor) -> Tensor:  # (Bt, nblk, L, N) -> (Bt, G, N, L)
            G = M.shape[1]
            return part.view(Bt, G, nblk // G, L, N).sum(2).transpose(2, 3)

        dB = reduce_var(dB_var, B) if var_b else dB_const.sum(0)
        dC = reduce_var(dC_var, C) if var_c else dC_const.sum(0)
        return du, ddt, dA.sum(0), dB, dC


def _core(u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, return_last_state: bool):
    return NumbaScanFn.apply(u, dt, A, B, C)


def selective_scan_numba(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan with numba-compiled CPU kernels; canonical arguments as for every backend.

    Args:
        u, delta: ``(Bt, D, L)`` CPU tensors.
        A: ``(D, N)``.
        B, C: Constant ``(D, N)`` or variable ``(Bt, G, N, L)``.
        D, delta_bias: Optional ``(D,)``.
        z: Optional gate ``(Bt, D, L)``.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        return_last_state: Also return the final state ``(Bt, D, N)`` (fp32).

    Returns:
        ``out`` ``(Bt, D, L)`` in ``u``'s dtype, and the last state if requested.
    """
    if u.device.type != "cpu":
        raise RuntimeError(f"the numba backend runs on CPU tensors only, got {u.device}")
    return run_with_core(_core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

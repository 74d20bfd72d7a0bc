"""The ``numba`` selective-scan backend: compiled CPU loops, forward and hand-written backward.

A core dependency on x86_64 / arm64 (elsewhere ``pip install "vision-ssm[cpu]"``). numba is imported
only when this backend runs (never by ``import vision_ssm``); the kernels are compiled on first use and cached on disk
(``cache=True``), so later processes start quickly.

The forward is a sequential loop per ``(batch, channel)`` (parallel over them) that keeps the
``N`` states in a small local array, fuses bias/softplus, ``D·u`` and the ``silu(z)`` gate, and
stores the state at every chunk start (every ``CHUNK`` steps). The backward recomputes one
chunk at a time from those states and runs the adjoint recurrence in reverse, so the memory
saved for backward is O(B·D·N·L/T) plus the inputs. It is deterministic: cross-channel and
cross-batch sums go through partial buffers reduced in a fixed order.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: Steps between saved states (memory O(B·D·N·L/T); the backward buffer is (T+1)·N per thread).
CHUNK = 64
#: Aim for at least this many parallel backward tasks (only the shapes decide the split, so the
#: result does not depend on the number of threads).
MIN_TASKS = 16


def _kernels():
    from . import kernels  # noqa: PLC0415  (lazy: imports numba)

    return kernels


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


def kernel_args(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool) -> tuple[list[Tensor], tuple]:
    """The kernels' tensor arguments (contiguous, kernel layouts, 1-element stand-ins for absent
    inputs) and flags ``(var_B, var_C, has_D, has_z, has_bias, softplus, CHUNK)``."""
    one = u.new_zeros(1)
    args = [u.contiguous(), delta.contiguous(), A.contiguous(), _bc_arg(B), _bc_arg(C),
            one if D is None else D.contiguous(), one.view(1, 1, 1) if z is None else z.contiguous(),
            one if delta_bias is None else delta_bias.contiguous()]
    flags = (B.dim() == 4, C.dim() == 4, D is not None, z is not None, delta_bias is not None,
             bool(delta_softplus), CHUNK)
    return args, flags


def numba_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool):
    """Forward on compute-dtype CPU tensors: ``(out, last, hs, args, flags)``; ``hs`` are the
    chunk-start states and ``args``/``flags`` what :func:`numba_backward` needs besides them."""
    k = _kernels()
    Bt, Dm, L = u.shape
    N = A.shape[1]
    nc = max(1, -(-L // CHUNK))
    args, flags = kernel_args(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    out = u.new_empty(Bt, Dm, L)
    hs = u.new_empty(Bt, Dm, nc, N)
    last = u.new_empty(Bt, Dm, N)
    k.scan_fwd(*[_np(a) for a in args], *flags, out.numpy(), hs.numpy(), last.numpy())
    return out, last, hs, args, flags


def numba_backward(args, flags, Bshape, Cshape, hs: Tensor, gout: Tensor, glast: Tensor | None):
    """Gradients of ``(u, delta, A, B, C, D, z, delta_bias)`` (``None`` for absent inputs) from the
    ``args``/``flags`` of :func:`numba_forward`, the original B/C shapes and ``hs``."""
    k = _kernels()
    u = args[0]
    var_b, var_c, has_d, has_z, has_bias = flags[:5]
    Bt, Dm, L = u.shape
    N = args[2].shape[1]
    bs = _block_size(Bt, Dm, torch.empty(Bshape, device="meta"), torch.empty(Cshape, device="meta"))
    nblk = Dm // bs
    gout = gout.to(u.dtype).contiguous()
    glast = u.new_zeros(Bt, Dm, N) if glast is None else glast.to(u.dtype).contiguous()
    du, ddelta = u.new_empty(Bt, Dm, L), u.new_empty(Bt, Dm, L)
    dz = u.new_empty(Bt, Dm, L) if has_z else u.new_zeros(1, 1, 1)
    dA = u.new_zeros(Bt, Dm, N)
    dD = u.new_zeros(Bt, Dm)
    dbias = u.new_zeros(Bt, Dm)
    dummy4, dummy3 = u.new_zeros(1, 1, 1, 1), u.new_zeros(1, 1, 1)
    dB_var = u.new_zeros(Bt, nblk, L, N) if var_b else dummy4
    dC_var = u.new_zeros(Bt, nblk, L, N) if var_c else dummy4
    dB_const = dummy3 if var_b else u.new_zeros(Bt, Dm, N)
    dC_const = dummy3 if var_c else u.new_zeros(Bt, Dm, N)
    k.scan_bwd(*[_np(a) for a in args], *flags, hs.numpy(), gout.numpy(), glast.numpy(), bs,
               du.numpy(), ddelta.numpy(), dz.numpy(), dA.numpy(), dD.numpy(), dbias.numpy(),
               dB_var.numpy(), dC_var.numpy(), dB_const.numpy(), dC_const.numpy())

    def reduce_var(part: Tensor, shape) -> Tensor:  # (Bt, nblk, L, N) -> (Bt, G, N, L)
        G = shape[1]
        return part.view(Bt, G, nblk // G, L, N).sum(2).transpose(2, 3)

    dB = reduce_var(dB_var, Bshape) if var_b else dB_const.sum(0)
    dC = reduce_var(dC_var, Cshape) if var_c else dC_const.sum(0)
    return (du, ddelta, dA.sum(0), dB, dC, dD.sum(0) if has_d else None, dz if has_z else None,
            dbias.sum(0) if has_bias else None)


class NumbaScanFn(torch.autograd.Function):
    """The whole op on compute-dtype CPU tensors: ``(u, delta, A, B, C, D, z, bias) -> (out, last)``."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool):
        out, last, hs, args, flags = numba_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        ctx.save_for_backward(*args, hs)
        ctx.flags = flags
        ctx.shapes = (B.shape, C.shape)
        return out, last

    @staticmethod
    def backward(ctx, gout: Tensor, glast: Tensor | None):
        *args, hs = ctx.saved_tensors
        return (*numba_backward(args, ctx.flags, *ctx.shapes, hs, gout, glast), None)

"""The ``numba`` backend as ``torch.library`` custom ops, for ``torch.compile``.

Dynamo cannot trace the numba kernels (they run on NumPy views of the tensors), so under
compilation :func:`~vision_ssm.ops.numba.scan.selective_scan_numba` calls these opaque ops; the
code around the scan is then compiled without a graph break (``fullgraph=True`` works on CPU).
Eager calls keep using :class:`~vision_ssm.ops.numba.core.NumbaScanFn`; both run
:func:`~vision_ssm.ops.numba.core.numba_forward` / ``numba_backward``. (``torch.export`` uses a
pure-PyTorch backend by default; an export with numba chosen explicitly keeps these ops.)

Ops (namespace ``vision_ssm``, CPU, compute-dtype tensors):

- ``numba_scan_fwd(u, delta, A, B, C, D?, z?, delta_bias?, softplus) -> (out, last, hs)``
- ``numba_scan_bwd(u, delta, A, B, C, D?, z?, delta_bias?, hs, gout, glast, softplus) -> 8 gradients``
  (contiguous; 0-element tensors for absent optional inputs)
"""
from __future__ import annotations

import torch
from torch import Tensor

from .core import CHUNK, kernel_args, numba_backward, numba_forward


@torch.library.custom_op("vision_ssm::numba_scan_fwd", mutates_args=(), device_types="cpu")
def numba_scan_fwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """``out`` ``(Bt, D, L)``, ``last`` ``(Bt, D, N)`` and the chunk-start states ``hs``
    ``(Bt, D, ceil(L / CHUNK), N)``, all in ``u``'s (compute) dtype."""
    out, last, hs, _, _ = numba_forward(u, delta, A, B, C, D, z, delta_bias, softplus)
    return out, last, hs


@numba_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, softplus):
    Bt, Dm, L = u.shape
    N = A.shape[1]
    return u.new_empty(Bt, Dm, L), u.new_empty(Bt, Dm, N), u.new_empty(Bt, Dm, max(1, -(-L // CHUNK)), N)


@torch.library.custom_op("vision_ssm::numba_scan_bwd", mutates_args=(), device_types="cpu")
def numba_scan_bwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, hs: Tensor, gout: Tensor, glast: Tensor, softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``(u, delta, A, B, C, D, z, delta_bias)`` for :func:`numba_scan_fwd`."""
    args, flags = kernel_args(u, delta, A, B, C, D, z, delta_bias, softplus)
    grads = numba_backward(args, flags, B.shape, C.shape, hs, gout, glast)
    return tuple(u.new_empty(0) if g is None else g.contiguous() for g in grads)  # no shared outputs


@numba_scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, hs, gout, glast, softplus):
    opt = lambda t: u.new_empty(0) if t is None else t.new_empty(t.shape)  # noqa: E731  (no shared outputs)
    return (u.new_empty(u.shape), delta.new_empty(delta.shape), A.new_empty(A.shape), B.new_empty(B.shape),
            C.new_empty(C.shape), opt(D), opt(z), opt(delta_bias))


def _setup(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, softplus = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[2])
    ctx.softplus = softplus
    ctx.absent = tuple(t is None for t in (D, z, delta_bias))


def _backward(ctx, gout, glast, _ghs):
    u, delta, A, B, C, D, z, delta_bias, hs = ctx.saved_tensors
    if glast is None:
        glast = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    if gout is None:
        gout = torch.zeros_like(u)
    grads = list(numba_scan_bwd(u, delta, A, B, C, D, z, delta_bias, hs, gout, glast, ctx.softplus))
    for i, absent in zip((5, 6, 7), ctx.absent):
        if absent:
            grads[i] = None
    return (*grads, None)


numba_scan_fwd.register_autograd(_backward, setup_context=_setup)

"""Entry point of the ``numba`` backend: :func:`selective_scan_numba` (a :class:`~vision_ssm.ops.scan.ScanFn`).

Eager calls run :class:`.core.NumbaScanFn`; under ``torch.compile`` / ``torch.export`` the same
kernels run as the opaque custom ops of :mod:`.custom_ops`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..scan.prologue import compute_dtype, delta_prologue
from ..scan.tracing import under_tracing
from . import custom_ops  # noqa: F401  (registers vision_ssm::numba_scan_fwd/bwd)
from .core import NumbaScanFn

#: Compute ``softplus(delta + delta_bias)`` inside the kernels (True, the default: a vectorised
#: loop per chunk) or as a PyTorch prologue with autograd (False).
FUSE_SOFTPLUS = True


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

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.ScanFn`. ``u`` must be on the CPU.
    """
    if u.device.type != "cpu":
        raise RuntimeError(f"the numba backend runs on CPU tensors only, got {u.device}")
    dtype_in = u.dtype
    ct = compute_dtype(dtype_in)
    with torch.autocast("cpu", enabled=False):
        u, delta, A, B, C, D, z, delta_bias = [None if t is None else t.to(ct) for t in
                                               (u, delta, A, B, C, D, z, delta_bias)]
        if not FUSE_SOFTPLUS:
            delta = delta_prologue(delta, delta_bias, delta_softplus, ct)
            delta_bias, delta_softplus = None, False
        if under_tracing(u):  # torch.compile / torch.export: the opaque custom op (numba_ops)
            out, last, _ = torch.ops.vision_ssm.numba_scan_fwd(u, delta, A, B, C, D, z, delta_bias,
                                                               bool(delta_softplus))
        else:
            out, last = NumbaScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        out = out.to(dtype_in)
    return (out, last) if return_last_state else out

"""The element-wise work every selective-scan implementation shares, written once.

:func:`selective_scan` splits into

* a *prologue* (:func:`delta_prologue`): cast to the compute dtype, add ``delta_bias``, apply
  softplus: ``δ = softplus(delta + delta_bias)``;
* a *core* ``y, last_state = core(u, δ, A, B, C)`` on compute-dtype tensors (the O(B·D·L·N) part);
* an *epilogue*: ``out = (y + D·u) · silu(z)``, cast to the input dtype.

The reference loop and the numba backend's unfused path call :func:`delta_prologue`; backends whose
core is a ``torch.autograd.Function`` (chunked) run it between both with :func:`run_with_core`.
Kernels that fuse the prologue (numba, Triton, mamba-ssm) compute the same expression in-kernel.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CoreFn", "compute_dtype", "delta_prologue", "run_with_core"]

#: ``core(u, delta, A, B, C, return_last_state) -> (y, last_state or None)`` on compute-dtype tensors.
CoreFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the internal math: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def delta_prologue(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool, dtype: torch.dtype) -> Tensor:
    """``softplus(delta + delta_bias)`` in ``dtype`` (bias and softplus optional).

    Args:
        delta: ``(Bt, D, L)`` step sizes.
        delta_bias: Optional ``(D,)``, broadcast over ``L``.
        delta_softplus: Apply softplus.
        dtype: Compute dtype (see :func:`compute_dtype`).

    Returns:
        ``(Bt, D, L)`` in ``dtype``.
    """
    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    return dt


def run_with_core(
    core: CoreFn,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    return_last_state: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``core`` between the shared prologue and epilogue (see the module docstring).

    ``B``/``C`` must already be canonical: constant ``(D, N)`` or variable ``(Bt, G, N, L)``.
    Autocast is disabled inside, so the math stays in fp32 under ``torch.autocast``.
    """
    dtype_in = u.dtype
    ct = compute_dtype(dtype_in)
    with torch.autocast(u.device.type, enabled=False):
        uc = u.to(ct)
        dt = delta_prologue(delta, delta_bias, delta_softplus, ct)
        y, last = core(uc, dt, A.to(ct), B.to(ct), C.to(ct), return_last_state)
        if D is not None:
            y = y + D.to(ct)[:, None] * uc
        if z is not None:
            y = y * F.silu(z.to(ct))
        out = y.to(dtype_in)
    return (out, last) if return_last_state else out

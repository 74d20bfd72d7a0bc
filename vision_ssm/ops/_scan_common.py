"""Helpers shared by the CPU backends: the element-wise prologue/epilogue around the core scan.

Every CPU backend splits :func:`vision_ssm.ops.selective_scan` into

* a *prologue* in plain PyTorch (autograd handles it): cast to the compute dtype, add
  ``delta_bias``, apply softplus;
* a *core* ``y, last_state = core(u, delta, A, B, C)`` on compute-dtype tensors, implemented by
  the backend as a ``torch.autograd.Function`` with its own memory-saving backward;
* an *epilogue* in plain PyTorch: ``out = (y + D·u) · silu(z)``, cast to the input dtype.

The prologue and epilogue are O(B·D·L) element-wise work; everything O(B·D·L·N) is in the core.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .reference import compute_dtype

CoreFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]


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
        dt = delta.to(ct)
        if delta_bias is not None:
            dt = dt + delta_bias.to(ct)[:, None]
        if delta_softplus:
            dt = F.softplus(dt)
        y, last = core(uc, dt, A.to(ct), B.to(ct), C.to(ct), return_last_state)
        if D is not None:
            y = y + D.to(ct)[:, None] * uc
        if z is not None:
            y = y * F.silu(z.to(ct))
        out = y.to(dtype_in)
    return (out, last) if return_last_state else out

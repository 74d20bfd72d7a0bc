"""The typed contract every selective-scan backend implements, documented once.

A backend registers two callables with :func:`~vision_ssm.ops.register_backend`: a :class:`ScanFn`
(required) and, optionally, a fused :class:`SS2DScanFn`. :func:`vision_ssm.ops.selective_scan` and
:func:`vision_ssm.ops.ss2d_scan` validate and canonicalise the arguments before calling them, so a
backend never re-checks shapes; it may assume exactly what is written here.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from ..geometry import DirectionSet

__all__ = ["SS2DScanFn", "ScanFn"]


@runtime_checkable
class ScanFn(Protocol):
    """``fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)``.

    Semantics are mamba-ssm's ``selective_scan_fn``: ``δ = softplus(delta + delta_bias)`` (softplus
    optional; see :func:`~vision_ssm.ops.scan.prologue.delta_prologue`), then for each step ``l``
    ``h_l = exp(δ_l·A) ⊙ h_{l-1} + δ_l·B_l·u_l``, ``y_l = Σ_n C_l[n]·h_l[n]``, and
    ``out = (y + D·u) · silu(z)``. Internal math in fp32 (fp64 for float64 inputs); ``out`` in
    ``u``'s dtype.

    Call arguments (already validated, on one device):

        u: ``(Bt, D, L)`` float32/float16/bfloat16 (float64 allowed).
        delta: ``(Bt, D, L)``, ``u``'s dtype.
        A: ``(D, N)`` real.
        B: Constant ``(D, N)`` or variable ``(Bt, G, N, L)`` with ``D % G == 0`` and unit last stride
            (3-D ``(Bt, N, L)`` has already been turned into ``G = 1``); channel ``d`` uses group
            ``d // (D // G)``.
        C: Like ``B`` (its ``G`` may differ from ``B``'s).
        D: Optional skip ``(D,)``.
        z: Optional gate ``(Bt, D, L)``, ``u``'s dtype.
        delta_bias: Optional ``(D,)``.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        return_last_state: Also return the final state ``(Bt, D, N)`` (fp32; its gradient need not
            be propagated).

    The call returns ``out`` ``(Bt, D, L)``, or ``(out, last_state)`` when ``return_last_state``.
    """

    def __call__(
        self,
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
    ) -> Tensor | tuple[Tensor, Tensor]: ...


@runtime_checkable
class SS2DScanFn(Protocol):
    """``fn(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus)``: a fused route → scan → merge.

    The contract of :func:`vision_ssm.ops.ss2d_scan` minus ``backend``: all tensors in the pixel
    domain (raster order, ``L = dirs.H * dirs.W``).

    Call arguments:

        x: ``(Bt, D, L)`` the map, channel-first.
        delta: ``(Bt, K, D, L)`` per-direction step sizes.
        A: ``(K*D, N)``; channel ``k*D + d`` belongs to direction ``k``.
        B: ``(Bt, K, N, L)``.
        C: ``(Bt, K, N, L)``.
        D: Optional ``(K*D,)``.
        delta_bias: Optional ``(K*D,)``.
        dirs: The K directions (read ``dirs.index_as(device)`` / ``dirs.walks``; do not re-derive them).
        delta_softplus: Apply softplus to ``delta + delta_bias``.

    The call returns ``(Bt, D, L)`` in ``x``'s dtype: the sum over directions of each scan mapped back
    to pixels.
    """

    def __call__(
        self,
        x: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Tensor | None,
        delta_bias: Tensor | None,
        dirs: DirectionSet,
        delta_softplus: bool,
    ) -> Tensor: ...

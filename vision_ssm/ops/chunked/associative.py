"""The export form of the ``chunked`` backend: a functional, log-depth (associative) chunked scan.

``torch.export`` (and ``torch.onnx.export(..., dynamo=True)``) records the forward of the
backend, not its hand-written backward. The eager core (:class:`~.scan.ChunkedScanFn`) is built for
speed in eager mode: it writes into preallocated buffers (``out=`` arguments, slice assignments) and
runs ``≈ 3·T + L/T`` small sequential steps. Recorded, those writes become ``aten.mul.out`` nodes
(which autograd refuses, so an exported program failed with gradients enabled), ``torch.empty``
buffers that ONNX folds into weight-sized constants, and one scatter of the whole state buffer per
step.

This module evaluates the same recurrence ``h_t = a_t·h_{t-1} + x_t`` (``a_t = exp(δ_t·A) ≤ 1``,
``x_t = δ_t·u_t·B_t``) with pure functions only, in few large operations:

1. the sequence ``(…, L)`` is cut into ``nc`` chunks of ``T`` steps ``(…, nc, T)`` (the tail padded
   with ``a = 1, x = 0``, which leaves the state unchanged);
2. inside every chunk an inclusive scan of the pairs ``(a, x)`` with the associative operator
   ``(a₁, x₁)∘(a₂, x₂) = (a₁·a₂, a₂·x₁ + x₂)`` in ``log₂ T`` doubling steps (Hillis–Steele), giving
   each step's state from a zero chunk start and its decay since the chunk start;
3. the same doubling scan over the ``nc`` chunk totals (``log₂ nc`` steps on ``T``-times smaller
   tensors) gives every chunk's true start state;
4. one fix-up ``h = h_local + decay·h_start``, then ``y_t = Σ_n C_t[n]·h_t[n]``.

Only products of decays ``≤ 1`` are formed (no ``exp(-cumsum)``, no differences of cumulative
sums), so nothing overflows for any ``δ ≥ 0`` and ``A ≤ 0``; a product that underflows to 0 is the
exact limit. The work is ``O(L·log T)`` element-wise operations instead of ``O(L)``, in
``≈ 7·(log₂ T + log₂ nc) + 15`` operators per call whatever ``L`` is. Autograd differentiates it
directly (the exported program then trains too); it keeps the ``(…, N, L)`` states alive for the
backward, unlike the eager core's recompute-in-backward.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

__all__ = ["EXPORT_CHUNK", "associative_scan_core"]

#: Steps per chunk of the export form (a power of two; the doubling scan takes ``log₂ T`` steps).
#: Small chunks cost less work (``L·log₂ T``); the carry over ``L/T`` chunks is cheap either way.
EXPORT_CHUNK = 16


def _shift(t: Tensor, k: int, fill: float) -> Tensor:
    """``t`` moved ``k`` steps later along the last axis, the first ``k`` steps set to ``fill``."""
    return F.pad(t, (k, 0), value=fill)[..., : t.shape[-1]]


def _inclusive_scan(a: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Inclusive scan of ``h_t = a_t·h_{t-1} + x_t`` along the last axis from ``h_{-1} = 0``.

    Args:
        a: Decays, any shape ``(…, T)``, broadcastable with ``x``.
        x: Inputs ``(…, T)``.

    Returns:
        ``(decay, h)``: ``decay_t = Π_{s≤t} a_s`` and the states ``h_t``, both ``(…, T)``.
    """
    T = x.shape[-1]
    k = 1
    while k < T:
        x = x + a * _shift(x, k, 0.0)
        a = a * _shift(a, k, 1.0)
        k *= 2
    return a, x


def associative_scan_core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = EXPORT_CHUNK
) -> tuple[Tensor, Tensor]:
    """The selective-scan core ``(u, δ, A, B, C) -> (y, last_state)``, functional and log-depth.

    Args:
        u: ``(Bt, D, L)`` in the compute dtype.
        dt: ``(Bt, D, L)`` step sizes ``δ`` (bias and softplus already applied).
        A: ``(D, N)``.
        B: Constant ``(D, N)`` or variable ``(Bt, G, N, L)`` (canonical, see
            :class:`~vision_ssm.ops.scan.signature.ScanFn`).
        C: Like ``B`` (its ``G`` may differ).
        chunk_size: Steps per chunk ``T``.

    Returns:
        ``y`` ``(Bt, D, L)`` and the last state ``(Bt, D, N)``.
    """
    lay = ChunkLayout(u, A, B, C, chunk_size)
    Bt, Dm, L, N, G, Dg, T, nc = lay.Bt, lay.Dm, lay.L, lay.N, lay.G, lay.Dg, lay.T, lay.nc
    seq, proj = lay.seq, lay.proj

    dt6 = seq(dt)
    a = (dt6 * A.view(1, G, Dg, N, 1, 1)).exp()  # (Bt, G, Dg, N, nc, T); padded steps: exp(0) = 1
    x = (dt6 * seq(u)) * proj(B)
    decay, h = _inclusive_scan(a, x)  # from a zero state at every chunk start
    # chunk start states: exclusive scan over the chunk totals (decay and end state of each chunk)
    _, c_end = _inclusive_scan(decay[..., -1], h[..., -1])  # (Bt, G, Dg, N, nc)
    h0 = _shift(c_end, 1, 0.0)
    h = h + decay * h0.unsqueeze(-1)
    y = (h * proj(C)).sum(3)  # (Bt, G, Dg, nc, T)
    y = y.reshape(Bt, Dm, nc * T)[..., :L]
    last = c_end[..., -1].reshape(Bt, Dm, N)
    return y, last


class ChunkLayout:
    """The chunked layout shared by the functional forms: ``nc`` chunks of ``T`` steps (``T`` a power of
    two, at most ``chunk_size``; the tail zero-padded, which leaves the state unchanged) and ``G``
    groups of ``Dg`` channels.

    :meth:`seq` and :meth:`proj` give the layout ``(Bt, G, Dg | 1, N | 1, nc, T)`` with the step last;
    the unrolled form permutes the step to the front.
    """

    def __init__(self, u: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int):
        self.Bt, self.Dm, self.L = u.shape
        self.N = A.shape[1]
        self.G = _groups(B, C, self.Dm)
        self.Dg = self.Dm // self.G
        self.T = max(1, min(chunk_size, 1 << max(0, math.ceil(math.log2(max(self.L, 1))))))
        self.nc = max(1, -(-self.L // self.T))
        self.pad = self.nc * self.T - self.L

    def seq(self, t: Tensor) -> Tensor:
        """``(Bt, D, L)`` -> ``(Bt, G, Dg, 1, nc, T)``, zero-padded."""
        return F.pad(t, (0, self.pad)).view(self.Bt, self.G, self.Dg, 1, self.nc, self.T)

    def proj(self, M: Tensor) -> Tensor:
        """Canonical B/C -> broadcastable ``(·, G, Dg | 1, N, nc | 1, T | 1)``."""
        if M.dim() == 2:
            return M.view(1, self.G, self.Dg, self.N, 1, 1)
        if M.shape[1] != self.G:  # B and C with different group counts: one group per channel
            M = M.repeat_interleave(self.Dm // M.shape[1], dim=1)
        return F.pad(M, (0, self.pad)).view(self.Bt, self.G, 1, self.N, self.nc, self.T)


def _groups(B: Tensor, C: Tensor, Dm: int) -> int:
    """The group count both B and C can use: their own, or one group per channel when they differ."""
    gb = B.shape[1] if B.dim() == 4 else None
    gc = C.shape[1] if C.dim() == 4 else None
    if gb is not None and gc is not None and gb != gc:
        return Dm
    return gb or gc or 1

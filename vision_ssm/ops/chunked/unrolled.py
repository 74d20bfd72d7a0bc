"""The export form of the ``chunked`` backend: a functional chunked scan, unrolled inside each chunk.

Like :mod:`.associative` this evaluates ``h_t = a_t·h_{t-1} + x_t`` (``a_t = exp(δ_t·A) ≤ 1``,
``x_t = δ_t·u_t·B_t``) with pure functions only, so ``torch.export`` / ONNX record it and autograd
differentiates the recorded program. The layout puts the step inside a chunk first,
``(T, Bt, G, Dg, N, nc)``, so that one step of every chunk is one contiguous slab:

1. inside all chunks at once, ``T`` unrolled steps ``h = a_t·h + x_t`` from a zero state, each on a
   slab ``1/T`` of the sequence (a graph of ``≈ 3·T`` small nodes, then one ``stack``);
2. the chunk start states by the doubling scan of :mod:`.associative` over the ``nc`` chunk totals
   (total decay ``exp(Σ_t δ_t·A)``, local end state), on ``T``-times smaller tensors;
3. one fix-up ``h_t += exp(cumsum_t δ·A)·h_start`` and ``y_t = Σ_n C_t[n]·h_t[n]``.

Only decays ``≤ 1`` are formed (sums of log-decays ``≤ 0``, exponentiated), as in the eager scan.
The work is ``O(L)`` element-wise operations (the doubling form's is ``O(L·log T)``): each step of
the doubling form pads, slices and multiplies the whole state, which is what dominated onnxruntime's
time (``docs/export.md``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .associative import ChunkLayout, _inclusive_scan, _shift

__all__ = ["UNROLL_CHUNK", "unrolled_scan_core"]

#: Steps per chunk of the unrolled export form (graph nodes grow as ``3·T`` per scan, the carry's
#: doubling steps as ``log₂(L/T)``).
UNROLL_CHUNK = 16


def unrolled_scan_core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = UNROLL_CHUNK
) -> tuple[Tensor, Tensor]:
    """The selective-scan core ``(u, δ, A, B, C) -> (y, last_state)``, functional, unrolled in chunks.

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

    def seq(t: Tensor) -> Tensor:  # (T, Bt, G, Dg, 1, nc)
        return lay.seq(t).permute(5, 0, 1, 2, 3, 4)

    def proj(M: Tensor) -> Tensor:  # broadcastable (T | 1, ·, G, Dg | 1, N, nc | 1)
        return lay.proj(M).permute(5, 0, 1, 2, 3, 4)

    dtT = seq(dt)
    logdec = (dtT * A.view(1, 1, G, Dg, N, 1)).contiguous()  # (T, Bt, G, Dg, N, nc), ≤ 0; padding: 0
    a = logdec.exp()
    x = (dtT * seq(u)) * proj(B)
    if x.shape != a.shape:  # constant B: broadcast to the state's shape
        x = x.expand(a.shape)
    x = x.contiguous()
    h = x[0]
    hs = [h]
    for t in range(1, T):  # local states from a zero chunk start, one slab per step
        h = a[t] * h + x[t]
        hs.append(h)
    local = torch.stack(hs, 0)
    # chunk start states: exclusive doubling scan over the chunk totals (on T-times smaller tensors)
    cum = logdec.cumsum(0)  # log-decay since the chunk start, ≤ 0
    _, c_end = _inclusive_scan(cum[-1].exp(), h)  # (Bt, G, Dg, N, nc)
    h0 = _shift(c_end, 1, 0.0)
    states = local + cum.exp() * h0
    yn = states * proj(C)
    y = yn.squeeze(4) if N == 1 else yn.sum(4)  # (T, Bt, G, Dg, nc); N = 1: no reduction node
    y = y.permute(1, 2, 3, 4, 0).reshape(Bt, Dm, nc * T)[..., :L]
    last = c_end[..., -1].reshape(Bt, Dm, N)
    return y, last

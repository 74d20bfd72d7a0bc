"""The ``chunked`` selective-scan backend: pure PyTorch, chunk-parallel, memory-saving backward.

The sequence of length ``L`` is cut into ``nc = ceil(L / T)`` chunks of ``T`` steps (the tail
is padded with ``δ = 0, u = 0``, which leaves the state unchanged, so any ``L`` works; no
power-of-two padding). With per-step decays ``a_t = exp(δ_t·A) ≤ 1`` and inputs
``x_t = δ_t·u_t·B_t`` the recurrence ``h_t = a_t·h_{t-1} + x_t`` is evaluated in three passes:

1. *local pass*: all chunks at once, ``T`` vectorised steps from a zero state, giving each
   chunk's local end state; the chunk's total decay is ``exp(Σ_t δ_t·A) ≤ 1`` (a sum of
   log-decays, so nothing can overflow);
2. *carry*: ``nc`` small sequential steps turn local end states into every chunk's true start
   state ``h0[c]``;
3. *state pass*: all chunks at once again, ``T`` vectorised steps from ``h0[c]``, then
   ``y_t = Σ_n C_t[n]·h_t[n]``.

Only decays ``≤ 1`` are ever formed (no ``exp(-cumsum)``). The Python loop count is about
``3·T + nc`` instead of ``L``; every step works on a ``(B, D, nc, N)`` slab.

The :class:`torch.autograd.Function` saves the (compute-dtype) inputs and the chunk start
states ``h0`` only — O(B·D·N·L/T) state memory instead of O(B·D·N·L). The backward recomputes
the states from ``h0``, runs the adjoint recurrence ``dh_t = q_t + a_{t+1}·dh_{t+1}`` with the
same local-pass / reverse-carry / state-pass structure, and forms every gradient with
deterministic reductions. The gradient of ``last_state`` is propagated.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry.route import recording_for_export
from ..scan.prologue import run_with_core
from .associative import _groups, associative_scan_core  # noqa: F401  (the doubling form, kept for comparison)
from .unrolled import unrolled_scan_core

#: The functional core recorded while exporting (``torch.export``, ONNX): :func:`.unrolled.unrolled_scan_core`
#: (measured faster in onnxruntime, docs/export.md) or :func:`.associative.associative_scan_core`.
EXPORT_CORE = unrolled_scan_core

#: Chunk length used when ``chunk_size`` is not given: ``round(sqrt(L))`` clamped to this range.
MIN_CHUNK, MAX_CHUNK = 16, 128


def default_chunk_size(L: int) -> int:
    """Chunk length for a sequence of length ``L`` (balances ``T`` vectorised steps and ``L/T`` carries)."""
    return int(min(MAX_CHUNK, max(MIN_CHUNK, round(math.sqrt(max(L, 1))))))


class _Layout:
    """Reshapes between ``(Bt, D, L)`` / canonical B, C and the chunk layout.

    The chunk layout of a state-sized tensor is ``(T, Bt, G, nc, N, Dg)``: step-in-chunk first
    (so a step is one contiguous slab), channels of a group last (so broadcasts of per-step B/C
    values over channels vectorise). Sequences become ``(T, Bt, G, nc, 1, Dg)``, variable B/C
    ``(T, Bt, G, nc, N, 1)`` and constant B/C and A ``(1, 1, G, 1, N, Dg)``.
    """

    def __init__(self, Bt: int, Dm: int, L: int, N: int, G: int, T: int):
        self.Bt, self.Dm, self.L, self.N, self.G, self.T = Bt, Dm, L, N, G, T
        self.Dg = Dm // G
        self.nc = max(1, -(-L // T))
        self.Lp = self.nc * T

    def seq(self, x: Tensor) -> Tensor:
        """``(Bt, D, L)`` -> ``(T, Bt, G, nc, 1, Dg)`` (contiguous, zero-padded)."""
        if self.Lp != self.L:
            x = F.pad(x, (0, self.Lp - self.L))
        x = x.reshape(self.Bt, self.G, self.Dg, self.nc, self.T).permute(4, 0, 1, 3, 2).contiguous()
        return x.unsqueeze(4)

    def unseq(self, x: Tensor) -> Tensor:
        """``(T, Bt, G, nc, [1,] Dg)`` -> ``(Bt, D, L)``."""
        x = x.reshape(self.T, self.Bt, self.G, self.nc, self.Dg)
        x = x.permute(1, 2, 4, 3, 0).reshape(self.Bt, self.Dm, self.Lp)
        return x[..., : self.L]

    def const(self, M: Tensor) -> Tensor:
        """``(D, N)`` -> ``(1, 1, G, 1, N, Dg)``."""
        return M.reshape(self.G, self.Dg, self.N).transpose(1, 2).contiguous().view(1, 1, self.G, 1, self.N, self.Dg)

    def proj(self, M: Tensor) -> Tensor:
        """Canonical B/C -> broadcastable chunk layout."""
        if M.dim() == 2:
            return self.const(M)
        Gm = M.shape[1]
        if Gm != self.G:  # B and C with different group counts: one group per channel
            M = M.repeat_interleave(self.Dm // Gm, dim=1)
        if self.Lp != self.L:
            M = F.pad(M, (0, self.Lp - self.L))
        M = M.reshape(self.Bt, self.G, self.N, self.nc, self.T).permute(4, 0, 1, 3, 2).contiguous()
        return M.unsqueeze(5)  # (T, Bt, G, nc, N, 1)

    def unproj(self, dM: Tensor, like: Tensor) -> Tensor:
        """Gradient -> canonical shape of ``like``.

        ``dM`` is ``(G, N, Dg)`` (already summed over steps, batch, chunks) for a constant
        ``like``, or ``(T, Bt, G, nc, N)`` (summed over the channels of each group) for a variable one.
        """
        if like.dim() == 2:
            return dM.transpose(1, 2).reshape(self.Dm, self.N)
        Gm = like.shape[1]
        dM = dM.permute(1, 2, 4, 3, 0).reshape(self.Bt, self.G, self.N, self.Lp)[..., : self.L]
        if Gm != self.G:
            dM = dM.reshape(self.Bt, Gm, self.Dm // Gm, self.N, self.L).sum(2)
        return dM

    def state_out(self, h: Tensor) -> Tensor:
        """``(Bt, G, N, Dg)`` -> ``(Bt, D, N)``."""
        return h.transpose(2, 3).reshape(self.Bt, self.Dm, self.N).contiguous()

    def state_in(self, h: Tensor) -> Tensor:
        """``(Bt, D, N)`` -> ``(Bt, G, N, Dg)``."""
        return h.reshape(self.Bt, self.G, self.Dg, self.N).transpose(2, 3).contiguous()


def _local_end_states(a: Tensor, x: Tensor) -> Tensor:
    """End state of every chunk started from zero: ``T`` vectorised steps of ``h = a_t·h + x_t``."""
    h, h2 = x[0].clone(), torch.empty_like(x[0])
    for t in range(1, a.shape[0]):  # one fused op per step, ping-ponging two buffers
        torch.addcmul(x[t], a[t], h, out=h2)
        h, h2 = h2, h
    return h


def _carry(P: Tensor, h_loc: Tensor) -> tuple[Tensor, Tensor]:
    """True chunk start states from local end states and chunk decays (sequential over chunks).

    ``P``, ``h_loc``: ``(Bt, G, nc, N, Dg)``. Returns ``h0`` (same shape) and the final state.
    """
    h0 = torch.empty_like(h_loc)
    h = torch.zeros_like(h_loc[:, :, 0])
    for c in range(P.shape[2]):
        h0[:, :, c] = h
        h = torch.addcmul(h_loc[:, :, c], P[:, :, c], h)
    return h0, h


def _states(a: Tensor, dtu5: Tensor, B6: Tensor, P: Tensor | None = None, h0: Tensor | None = None):
    """All states in a ``(T+1, Bt, G, nc, N, Dg)`` buffer: ``[0]`` = chunk starts, ``[t+1]`` = ``h_t``.

    Either ``h0`` (chunk start states, saved by the forward) or ``P`` (chunk total decays) is
    given; with ``P`` the start states come from the local pass and the carry.
    Returns ``(H, h0, last)``.
    """
    T = a.shape[0]
    H = torch.empty((T + 1,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device)
    torch.mul(dtu5, B6, out=H[1:])  # x_t = δ_t·u_t·B_t
    last = None
    if h0 is None:
        h0, last = _carry(P, _local_end_states(a, H[1:]))
    H[0] = h0
    for t in range(T):
        H[t + 1].addcmul_(a[t], H[t])
    return H, h0, last


#: Contract over the N states with batched matmuls from this N on (element-wise below it).
MATMUL_MIN_N = 8


def _sum_tbc(X: Tensor) -> Tensor:
    """Sum ``(T, Bt, G, nc, N, Dg)`` over steps, batch and chunks -> ``(G, N, Dg)`` (steps first: contiguous slabs)."""
    return X.sum(0).sum(dim=(0, 2))


def _sum_n(X: Tensor, M6: Tensor, var: bool) -> Tensor:
    """``Σ_n M·X`` over the state axis -> ``(T, Bt, G, nc, 1, Dg)``."""
    if var and X.shape[-2] >= MATMUL_MIN_N:  # (…, 1, N) @ (…, N, Dg)
        return torch.matmul(M6.transpose(-1, -2), X)
    return (X * M6).sum(-2, keepdim=True)


class ChunkedScanFn(torch.autograd.Function):
    """Core scan ``(u, δ, A, B, C) -> (y, last_state)`` on compute-dtype tensors (δ after softplus)."""

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int):
        Bt, Dm, L = u.shape
        N = A.shape[1]
        lay = _Layout(Bt, Dm, L, N, _groups(B, C, Dm), chunk_size)
        dt5 = lay.seq(dt)
        dtu5 = dt5 * lay.seq(u)
        a = dt5 * lay.const(A)  # log-decays δ·A, (T, Bt, G, nc, N, Dg)
        P = a.sum(0).exp_()  # chunk total decays from summed log-decays (<= 1: nothing overflows)
        a.exp_()
        H, h0, last = _states(a, dtu5, lay.proj(B), P=P)
        y = lay.unseq(_sum_n(H[1:], lay.proj(C), C.dim() == 4))
        ctx.save_for_backward(u, dt, A, B, C, h0)
        ctx.lay = lay
        return y, lay.state_out(last)

    @staticmethod
    def backward(ctx, gy: Tensor, glast: Tensor | None):
        u, dt, A, B, C, h0 = ctx.saved_tensors
        lay: _Layout = ctx.lay
        T = lay.T
        var_B, var_C = B.dim() == 4, C.dim() == 4
        dt5, u5 = lay.seq(dt), lay.seq(u)
        dtu5 = dt5 * u5
        A6, B6, C6 = lay.const(A), lay.proj(B), lay.proj(C)
        a = dt5 * A6
        Ps0 = a[1:].sum(0).exp_()  # decay of steps 1..T-1 of every chunk (reverse carry)
        a.exp_()
        H, _, _ = _states(a, dtu5, B6, h0=h0)
        gy5 = lay.seq(gy)
        # adjoint recurrence dh_t = q_t + a_{t+1}·dh_{t+1} with q_t = gy_t·C_t, computed in place in q
        q = torch.mul(gy5, C6)
        full = tuple(H.shape)
        full = (T,) + full[1:]
        if tuple(q.shape) != full:
            q = q.expand(full).contiguous()
        g, g2 = q[T - 1].clone(), torch.empty_like(q[T - 1])  # local pass (zero carry): adjoint at chunk starts
        for t in range(T - 2, -1, -1):
            torch.addcmul(q[t], a[t + 1], g, out=g2)
            g, g2 = g2, g
        R = torch.zeros_like(g[:, :, 0]) if glast is None else lay.state_in(glast.to(g.dtype))
        Rs = torch.empty_like(g)  # carry into the last step of every chunk
        for c in range(lay.nc - 1, -1, -1):
            Rs[:, :, c] = R
            R = a[0][:, :, c] * torch.addcmul(g[:, :, c], Ps0[:, :, c], R)
        dH = q
        dH[T - 1].add_(Rs)
        for t in range(T - 2, -1, -1):
            dH[t].addcmul_(a[t + 1], dH[t + 1])
        Hs = H[1:]
        # dC: Σ over the channels of the group (variable) or over steps, batch, chunks (constant)
        if var_C and lay.N >= MATMUL_MIN_N:
            dC = lay.unproj(torch.matmul(Hs, gy5.transpose(-1, -2)).squeeze(-1), C)
        elif var_C:
            dC = lay.unproj((Hs * gy5).sum(-1), C)
        else:
            dC = lay.unproj(_sum_tbc(Hs * gy5), C)
        if var_B and lay.N >= MATMUL_MIN_N:
            dB = lay.unproj(torch.matmul(dH, dtu5.transpose(-1, -2)).squeeze(-1), B)
        elif var_B:
            dB = lay.unproj((dH * dtu5).sum(-1), B)
        else:
            dB = lay.unproj(_sum_tbc(dH * dtu5), B)
        dHB = _sum_n(dH, B6, var_B)  # Σ_n dh·B
        du5 = dHB * dt5
        # decay path; H[:-1] (h_{t-1}) is overwritten in place, so this is the last use of H:
        # dlog_t = dh_t·a_t·h_{t-1}, dδ += Σ_n dlog·A, dA += Σ dlog·δ
        dlog = H[:-1].mul_(a).mul_(dH)
        dA = lay.unproj(_sum_tbc(dlog * dt5), A)
        ddt5 = dHB * u5 + _sum_n(dlog, A6, False)
        return lay.unseq(du5), lay.unseq(ddt5), dA, dB, dC, None


def _core(chunk_size: int | None):
    def core(u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, return_last_state: bool):
        if recording_for_export():  # a functional form (modules .unrolled, .associative)
            return EXPORT_CORE(u, dt, A, B, C)
        T = chunk_size or default_chunk_size(u.shape[-1])
        y, last = ChunkedScanFn.apply(u, dt, A, B, C, T)
        return y, last

    return core


def selective_scan_chunked(
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
    chunk_size: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked selective scan (pure PyTorch); canonical arguments as for every backend.

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.ScanFn`.

    Args:
        chunk_size: Steps per chunk ``T`` (extra keyword of this backend); default
            :func:`default_chunk_size` (``≈ sqrt(L)``).
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return run_with_core(
        _core(chunk_size), u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )

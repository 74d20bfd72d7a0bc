"""Triton forward kernel of the selective scan, shared by the 1-D op and the fused SS2D core.

One program owns one batch element and a block of ``BD`` channels. It walks ``K`` directions one
after the other (``K = 1`` for the plain 1-D scan); for each it runs over the sequence in tiles of
``T`` steps. Inside a tile the state ``h`` of every (step, state, channel) triple is the inclusive
scan of the pairs ``(exp(δ·A), δ·B·u)`` along the tile (``tl.associative_scan`` over axis 0),
started from the state carried over from the previous tile. ``y = Σ_n C·h`` is reduced in
registers and written at the pixel each step visits (``idx[k, t]`` when ``HAS_IDX``), added to what
the earlier directions of the same program wrote there: the K-direction merge happens in-kernel,
in a fixed order, so the result is deterministic and the K routed copies are never materialised.

Register tiles are ordered ``[step, state, channel]`` with the channel axis last: Triton then
spreads the channels (and, when fewer than a warp's lanes, the states) over the lanes and keeps
the ``T`` steps of a tile inside each thread, so the scan along the tile is a sequential loop in
registers — no cross-lane shuffles (measured with the SASS of the sm_90 build, see
``benchmarks/README.md``). Channel-last inputs are read coalesced in that layout directly;
channel-first ones go through one shared-memory transpose per load.

Tensor layouts (logical shapes; any strides, passed in elements, so channel-last memory works):
    u ``(Bt, Dm, L)`` shared by the K directions; δ ``(Bt, K, Dm, L)``; B, C variable
    ``(Bt, G, N, L)`` (group ``k*GPD + c // DG``) or constant ``(K*Dm, N)``; A ``(K*Dm, N)``;
    D, delta_bias ``(K*Dm,)``; out ``(Bt, Dm, L)``; states ``(Bt, K*Dm, NT, NP)`` fp32 (state at the
    end of every tile, saved for the backward); last ``(Bt, K*Dm, NP)`` fp32.
"""
from __future__ import annotations

import os

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _combine(a0, b0, a1, b1):
    """Associative operator of ``h = a·h_prev + b``: apply (a0, b0) first, then (a1, b1)."""
    return a0 * a1, a1 * b0 + b1


# On GPUs the logarithm of the softplus uses the hardware ``lg2.approx`` (one MUFU op; relative
# error ~2**-22) instead of the ~20-instruction polynomial that ``tl.log`` compiles to. Triton's
# interpreter (CPU tests) cannot run inline PTX and keeps ``tl.log2``.
FAST_LOG2 = tl.constexpr(os.environ.get("TRITON_INTERPRET") != "1")


@triton.jit
def _log2(x):
    if FAST_LOG2:
        return tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)
    else:
        return tl.log2(x)


@triton.jit
def _softplus(x):
    """``log(1 + e^x)`` in fp32 (``x`` itself above 20, as mamba-ssm)."""
    return tl.where(x <= 20.0, LN2 * _log2(1.0 + tl.exp2(x * LOG2E)), x)


@triton.jit
def _scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, Dp_ptr, z_ptr, bias_ptr, idx_ptr,
    out_ptr, states_ptr, last_ptr,
    L, Dm, NT,
    su_b, su_c, su_l,
    sd_b, sd_k, sd_c, sd_l,
    sB_b, sB_g, sB_n, sB_l,
    sC_b, sC_g, sC_n, sC_l,
    sz_b, sz_c, sz_l,
    so_b, so_k, so_c, so_l,
    DGB, DGC, GPDB, GPDC,
    N: tl.constexpr, NP: tl.constexpr, K: tl.constexpr, BD: tl.constexpr, T: tl.constexpr,
    B_CONST: tl.constexpr, C_CONST: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_IDX: tl.constexpr, SAVE_STATES: tl.constexpr, KSPLIT: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    c0 = tl.program_id(1) * BD
    cs = c0 + tl.arange(0, BD)  # [BD]
    cmask = cs < Dm
    ns = tl.arange(0, NP)  # [NP]
    nmask = ns < N
    ts = tl.arange(0, T)  # [T]
    last_row = ts[:, None, None] == T - 1
    KD = K * Dm
    pmask = nmask[:, None] & cmask[None, :]  # [NP, BD]
    if KSPLIT:  # one direction per program (grid axis 2), output slab k: merged by the host
        k_lo = tl.program_id(2)
        k_hi = k_lo + 1
    else:  # all K directions in this program, merged in place in a fixed order
        k_lo = 0
        k_hi = K
    for k in range(k_lo, k_hi):
        pc = k * Dm + cs
        A2 = tl.load(A_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32) * LOG2E
        if HAS_D:
            Dv = tl.load(Dp_ptr + pc, mask=cmask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + pc, mask=cmask, other=0.0).to(tl.float32)
        if B_CONST:
            B3 = tl.load(B_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32)[None, :, :]
        else:
            gB = k * GPDB + c0 // DGB
        if C_CONST:
            C3 = tl.load(C_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32)[None, :, :]
        else:
            gC = k * GPDC + c0 // DGC
        # 64-bit scalar bases per (batch, direction); per-element offsets stay 32-bit (the host checks
        # that one batch element's slab of every tensor has fewer than 2**31 elements)
        u_base = u_ptr + pid_b * su_b
        dt_base = dt_ptr + pid_b * sd_b + k * sd_k
        o_base = out_ptr + pid_b * so_b + k * so_k
        if not B_CONST:
            B_base = B_ptr + pid_b * sB_b + gB * sB_g
        if not C_CONST:
            C_base = C_ptr + pid_b * sC_b + gC * sC_g
        if HAS_Z:
            z_base = z_ptr + pid_b * sz_b
        h = tl.zeros([NP, BD], dtype=tl.float32)
        for ti in range(0, NT):
            t = ti * T + ts
            tmask = t < L
            if HAS_IDX:
                pos = tl.load(idx_ptr + k * L + t, mask=tmask, other=0)
            else:
                pos = t
            m2 = tmask[:, None] & cmask[None, :]  # [T, BD]
            u = tl.load(u_base + cs[None, :] * su_c + pos[:, None] * su_l, mask=m2, other=0.0)
            u = u.to(tl.float32)
            dt = tl.load(
                dt_base + cs[None, :] * sd_c + pos[:, None] * sd_l, mask=m2, other=0.0
            ).to(tl.float32)
            if HAS_BIAS:
                dt = dt + bias[None, :]
            if SOFTPLUS:
                dt = _softplus(dt)
            dt = tl.where(m2, dt, 0.0)  # padded steps: decay 1, input 0 -> the state passes through
            tn_mask = tmask[:, None] & nmask[None, :]  # [T, NP]
            if not B_CONST:
                B3 = tl.load(
                    B_base + ns[None, :] * sB_n + pos[:, None] * sB_l, mask=tn_mask, other=0.0
                ).to(tl.float32)[:, :, None]
            if not C_CONST:
                C3 = tl.load(
                    C_base + ns[None, :] * sC_n + pos[:, None] * sC_l, mask=tn_mask, other=0.0
                ).to(tl.float32)[:, :, None]
            dA = tl.exp2(dt[:, None, :] * A2[None, :, :])  # [T, NP, BD]
            dBu = (dt * u)[:, None, :] * B3
            aS, hS = tl.associative_scan((dA, dBu), 0, _combine)
            hs = hS + aS * h[None, :, :]
            y = tl.sum(hs * C3, axis=1)  # [T, BD]
            h = tl.sum(tl.where(last_row, hs, 0.0), axis=0)
            if SAVE_STATES:
                tl.store(
                    states_ptr + ((pid_b * KD + pc[None, :]) * NT + ti) * NP + ns[:, None], h, mask=cmask[None, :]
                )
            if HAS_D:
                y = y + Dv[None, :] * u
            if HAS_Z:
                zv = tl.load(z_base + cs[None, :] * sz_c + pos[:, None] * sz_l, mask=m2, other=0.0)
                zv = zv.to(tl.float32)
                y = y * zv / (1.0 + tl.exp(-zv))
            optr = o_base + cs[None, :] * so_c + pos[:, None] * so_l
            if K > 1 and not KSPLIT:
                y = y + tl.load(optr, mask=m2 & (k > 0), other=0.0).to(tl.float32)
            tl.store(optr, y.to(out_ptr.dtype.element_ty), mask=m2)
        tl.store(last_ptr + (pid_b * KD + pc[None, :]) * NP + ns[:, None], h, mask=cmask[None, :])
        if K > 1 and not KSPLIT:
            tl.debug_barrier()  # the next direction reads what this one wrote at other steps

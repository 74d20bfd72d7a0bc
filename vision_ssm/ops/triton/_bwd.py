"""Triton backward kernel of the selective scan (1-D op and fused SS2D core), deterministic.

Same program grid as the forward (one batch element × ``BD`` channels, ``K`` directions in
turn). Tiles are visited in reverse. For each tile the forward is recomputed from the state saved
at the end of the previous tile, then the adjoint state ``q_t = dL/dh_t`` is a reverse scan of
``q_t = C_t·dy_t + exp(δ_{t+1}·A)·q_{t+1}`` (the decay of the *next* step is rebuilt from δ loaded
one step ahead). From ``h``, ``q`` and ``h_t − δ_t·B_t·u_t = exp(δ_t·A)·h_{t−1}``:

    du = δ·Σ_n q·B + D·dy          dδ = Σ_n q·(A·(h − δBu) + B·u)      dA = Σ_t q·δ·(h − δBu)
    dB_t = Σ_c q·δ·u               dC_t = Σ_c h·dy                      dD = Σ_t dy·u

Nothing is accumulated with atomics: the sums over channels (variable ``dB``/``dC``) are written
as one partial per channel block, the sums over steps (``dA``, ``dD``, ``dδ_bias``, constant
``dB``/``dC``) as one partial per (batch, channel), all in one ``(Bt, SP_B)`` buffer (row stride
``SP_B``); the host reduces them with fixed-order sums, one per buffer.
``du`` of the K directions is accumulated at each pixel by the one program that owns it.

Register tiles are ordered ``[step, state, channel]`` as in the forward, so both scans along a
tile run inside each thread.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._fwd import LOG2E, _combine, _softplus


@triton.jit
def _scan_bwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, Dp_ptr, z_ptr, bias_ptr, idx_ptr, states_ptr, dout_ptr,
    du_ptr, ddt_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
    L, Dm, NT,
    su_b, su_c, su_l,
    sd_b, sd_k, sd_c, sd_l,
    sB_b, sB_g, sB_n, sB_l,
    sC_b, sC_g, sC_n, sC_l,
    sz_b, sz_c, sz_l,
    so_b, so_c, so_l,
    sdu_b, sdu_k, sdu_c, sdu_l,
    pB_b, pB_g, pB_j, pB_n, pB_l,
    pC_b, pC_g, pC_j, pC_n, pC_l,
    DGB, DGC, GPDB, GPDC, SP_B,
    N: tl.constexpr, NP: tl.constexpr, K: tl.constexpr, BD: tl.constexpr, T: tl.constexpr,
    B_CONST: tl.constexpr, C_CONST: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_IDX: tl.constexpr, KSPLIT: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    c0 = tl.program_id(1) * BD
    cs = c0 + tl.arange(0, BD)  # [BD]
    cmask = cs < Dm
    ns = tl.arange(0, NP)  # [NP]
    nmask = ns < N
    ts = tl.arange(0, T)  # [T]
    first_row = ts[:, None, None] == 0
    KD = K * Dm
    pmask = nmask[:, None] & cmask[None, :]  # [NP, BD]
    if KSPLIT:  # one direction per program; du slab k is summed over k by the host
        k_lo = tl.program_id(2)
        k_hi = k_lo + 1
    else:
        k_lo = 0
        k_hi = K
    for k in range(k_lo, k_hi):
        pc = k * Dm + cs
        A = tl.load(A_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32)  # [NP, BD]
        A2 = A * LOG2E
        if HAS_D:
            Dv = tl.load(Dp_ptr + pc, mask=cmask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + pc, mask=cmask, other=0.0).to(tl.float32)
        if B_CONST:
            B3 = tl.load(B_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32)[None, :, :]
            dB_acc = tl.zeros([NP, BD], dtype=tl.float32)
        else:
            gB = k * GPDB + c0 // DGB
            jB = (c0 % DGB) // BD
            B_base = B_ptr + pid_b * sB_b + gB * sB_g
            pB_base = dB_ptr + pid_b * pB_b + gB * pB_g + jB * pB_j
        if C_CONST:
            C3 = tl.load(C_ptr + pc[None, :] * N + ns[:, None], mask=pmask, other=0.0).to(tl.float32)[None, :, :]
            dC_acc = tl.zeros([NP, BD], dtype=tl.float32)
        else:
            gC = k * GPDC + c0 // DGC
            jC = (c0 % DGC) // BD
            C_base = C_ptr + pid_b * sC_b + gC * sC_g
            pC_base = dC_ptr + pid_b * pC_b + gC * pC_g + jC * pC_j
        # 64-bit scalar bases, 32-bit per-element offsets (see the forward)
        u_base = u_ptr + pid_b * su_b
        dt_base = dt_ptr + pid_b * sd_b + k * sd_k
        ddt_base = ddt_ptr + pid_b * sd_b + k * sd_k
        do_base = dout_ptr + pid_b * so_b
        du_base = du_ptr + pid_b * sdu_b + k * sdu_k
        if HAS_Z:
            z_base = z_ptr + pid_b * sz_b
            dz_base = dz_ptr + pid_b * sz_b
        q = tl.zeros([NP, BD], dtype=tl.float32)
        dA_acc = tl.zeros([NP, BD], dtype=tl.float32)
        dD_acc = tl.zeros([BD], dtype=tl.float32)
        dbias_acc = tl.zeros([BD], dtype=tl.float32)
        for tj in range(0, NT):
            ti = NT - 1 - tj
            t = ti * T + ts
            tmask = t < L
            t1 = t + 1
            t1mask = t1 < L
            if HAS_IDX:
                pos = tl.load(idx_ptr + k * L + t, mask=tmask, other=0)
                pos1 = tl.load(idx_ptr + k * L + t1, mask=t1mask, other=0)
            else:
                pos = t
                pos1 = t1
            m2 = tmask[:, None] & cmask[None, :]  # [T, BD]
            m21 = t1mask[:, None] & cmask[None, :]
            tn_mask = tmask[:, None] & nmask[None, :]  # [T, NP]
            u = tl.load(u_base + cs[None, :] * su_c + pos[:, None] * su_l, mask=m2, other=0.0).to(tl.float32)
            coff = cs[None, :] * sd_c
            dtr = tl.load(dt_base + coff + pos[:, None] * sd_l, mask=m2, other=0.0).to(tl.float32)
            dt1 = tl.load(dt_base + coff + pos1[:, None] * sd_l, mask=m21, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dtr = dtr + bias[None, :]
                dt1 = dt1 + bias[None, :]
            if SOFTPLUS:
                dt = _softplus(dtr)
                dt1 = _softplus(dt1)
            else:
                dt = dtr
            dt = tl.where(m2, dt, 0.0)
            if not B_CONST:
                B3 = tl.load(B_base + ns[None, :] * sB_n + pos[:, None] * sB_l, mask=tn_mask,
                             other=0.0).to(tl.float32)[:, :, None]
            if not C_CONST:
                C3 = tl.load(C_base + ns[None, :] * sC_n + pos[:, None] * sC_l, mask=tn_mask,
                             other=0.0).to(tl.float32)[:, :, None]
            dout = tl.load(do_base + cs[None, :] * so_c + pos[:, None] * so_l, mask=m2, other=0.0).to(tl.float32)
            # recompute the forward of this tile from the state saved at the end of the previous one
            hprev = tl.load(
                states_ptr + ((pid_b * KD + pc[None, :]) * NT + (ti - 1)) * NP + ns[:, None],
                mask=cmask[None, :] & (ti > 0),
                other=0.0,
            )
            dA = tl.exp2(dt[:, None, :] * A2[None, :, :])  # [T, NP, BD]
            dtu = dt * u
            dBu = dtu[:, None, :] * B3
            aS, hS = tl.associative_scan((dA, dBu), 0, _combine)
            hs = hS + aS * hprev[None, :, :]
            if HAS_Z:
                zv = tl.load(z_base + cs[None, :] * sz_c + pos[:, None] * sz_l, mask=m2, other=0.0).to(tl.float32)
                sig = 1.0 / (1.0 + tl.exp2(-zv * LOG2E))
                y = tl.sum(hs * C3, axis=1)
                if HAS_D:
                    y = y + Dv[None, :] * u
                dzv = dout * y * sig * (1.0 + zv * (1.0 - sig))
                tl.store(dz_base + cs[None, :] * sz_c + pos[:, None] * sz_l, dzv.to(dz_ptr.dtype.element_ty), mask=m2)
                dy = dout * zv * sig
            else:
                dy = dout
            # adjoint state: reverse scan with the next step's decay
            dec1 = tl.where(m21[:, None, :], tl.exp2(dt1[:, None, :] * A2[None, :, :]), 0.0)
            g = C3 * dy[:, None, :]
            # reverse scan as flip -> forward scan -> flip: the steps are in-thread, so the flips are
            # free, while ``reverse=True`` lowers to lane shuffles (Triton 3.6-3.8, seen in the SASS)
            cS, qS = tl.associative_scan((tl.flip(dec1, 0), tl.flip(g, 0)), 0, _combine)
            cS = tl.flip(cS, 0)
            qS = tl.flip(qS, 0)
            qs = qS + cS * q[None, :, :]
            q = tl.sum(tl.where(first_row, qs, 0.0), axis=0)
            hb = hs - dBu
            qB = tl.sum(qs * B3, axis=1)  # [T, BD]
            qhb = qs * hb
            ddt = tl.sum(qhb * A[None, :, :], axis=1) + u * qB
            du = dt * qB
            if HAS_D:
                du = du + Dv[None, :] * dy
                dD_acc += tl.sum(dy * u, axis=0)
            dA_acc += tl.sum(qhb * dt[:, None, :], axis=0)
            if B_CONST:
                dB_acc += tl.sum(qs * dtu[:, None, :], axis=0)
            else:
                dBt = tl.sum(qs * dtu[:, None, :], axis=2)  # [T, NP]: the channel block's partial
                tl.store(pB_base + ns[None, :] * pB_n + pos[:, None] * pB_l, dBt, mask=tn_mask)
            if C_CONST:
                dC_acc += tl.sum(hs * dy[:, None, :], axis=0)
            else:
                dCt = tl.sum(hs * dy[:, None, :], axis=2)
                tl.store(pC_base + ns[None, :] * pC_n + pos[:, None] * pC_l, dCt, mask=tn_mask)
            if SOFTPLUS:
                ddt = ddt / (1.0 + tl.exp2(-dtr * LOG2E))
            ddt = tl.where(m2, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=0)
            tl.store(ddt_base + coff + pos[:, None] * sd_l, ddt.to(ddt_ptr.dtype.element_ty), mask=m2)
            duptr = du_base + cs[None, :] * sdu_c + pos[:, None] * sdu_l
            if K > 1 and not KSPLIT:
                du = du + tl.load(duptr, mask=m2 & (k > 0), other=0.0).to(tl.float32)
            tl.store(duptr, du.to(du_ptr.dtype.element_ty), mask=m2)
        # per-(batch, channel) partials: row pid_b of (Bt, SP_B) arrays, (K*Dm, NP) or (K*Dm,) each
        pn = pid_b * SP_B + pc[None, :] * NP + ns[:, None]
        tl.store(dA_ptr + pn, dA_acc, mask=cmask[None, :])
        if B_CONST:
            tl.store(dB_ptr + pn, dB_acc, mask=cmask[None, :])
        if C_CONST:
            tl.store(dC_ptr + pn, dC_acc, mask=cmask[None, :])
        if HAS_D:
            tl.store(dD_ptr + pid_b * SP_B + pc, dD_acc, mask=cmask)
        if HAS_BIAS:
            tl.store(dbias_ptr + pid_b * SP_B + pc, dbias_acc, mask=cmask)
        if K > 1 and not KSPLIT:
            tl.debug_barrier()

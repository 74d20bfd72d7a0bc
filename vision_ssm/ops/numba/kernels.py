"""Numba kernels of the ``numba`` backend (imported only when that backend is used).

Both kernels run one sequential loop over ``L`` per ``(batch, channel)`` with the ``N`` states
in a small local array, parallel (``prange``) over batch × channels, and fuse the whole op:
``δ = softplus(delta + bias)``, the scan, ``y + D·u`` and the ``silu(z)`` gate. Arrays (all
C-contiguous, one float dtype — float32 or float64):

* ``u``, ``delta``, ``z``: ``(Bt, D, L)``; ``A``: ``(D, N)``; ``Dv``, ``bias``: ``(D,)``;
* ``Bm``, ``Cm``: variable ``(Bt, G, L, N)`` (note: L before N) or constant ``(1, 1, D, N)``.

Unused optional arrays are passed as size-1 dummies with the flag off. The forward stores the
state at the start of every chunk of ``T`` steps, ``hs (Bt, D, nc, N)``. The backward recomputes
each chunk's states from ``hs`` into a ``(T+1, N)`` buffer and runs the adjoint recurrence
backwards. Reductions over channels (``dB``/``dC`` of variable B/C) go to per-block partial
buffers and those over the batch (``dA``, ``dD``, ...) to per-batch partials, summed afterwards
in a fixed order: the backward is deterministic and independent of the thread count.

For float32 the decays use a vectorisable ``exp`` (``2^k·2^f`` with ``|f| ≤ 1/2`` and a degree-7
polynomial; relative error ≈ 1e-7, about one float32 ulp); float64 uses the exact ``exp``.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload


@intrinsic
def _i32_bits_as_f32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f32_bits_as_i32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


def _exp(x):  # pragma: no cover - typed through the overload below
    return math.exp(x)


@overload(_exp, jit_options={"fastmath": True, "error_model": "numpy"}, inline="always")
def _exp_overload(x):
    if x == types.float32:

        def fast_exp32(x):
            # exp(x) = 2^k · 2^f with k = round(x·log2 e), |f| <= 1/2; 2^f by its degree-7 Taylor polynomial
            t = min(max(x * np.float32(1.4426950408889634), np.float32(-126.0)), np.float32(128.0))
            k = np.floor(t + np.float32(0.5))
            f = t - k
            p = np.float32(1.5252733804059838e-05)
            p = p * f + np.float32(0.00015403530393381606)
            p = p * f + np.float32(0.0013333558146428441)
            p = p * f + np.float32(0.009618129107628477)
            p = p * f + np.float32(0.055504108664821576)
            p = p * f + np.float32(0.2402265069591007)
            p = p * f + np.float32(0.6931471805599453)
            p = p * f + np.float32(1.0)
            return p * _i32_bits_as_f32((np.int32(k) + np.int32(127)) << np.int32(23))

        return fast_exp32
    return lambda x: np.exp(x)


def _softplus(x):  # pragma: no cover - typed through the overload below
    return math.log1p(math.exp(x)) if x <= 20.0 else x


@overload(_softplus, jit_options={"fastmath": True, "error_model": "numpy"}, inline="always")
def _softplus_overload(x):
    """mamba-ssm's softplus, ``x <= 20 ? log1p(exp(x)) : x``; branch-free and vectorisable for float32
    (which, above 20, adds ``log1p(exp(-x)) < 2e-9`` instead of 0)."""
    if x == types.float32:

        def fast_softplus32(x):
            # softplus(x) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1];
            # log1p(e) = 2·atanh(s) with s = e / (2 + e) in (0, 1/3]: an odd series in s
            e = _exp(-abs(x))
            s = e / (np.float32(2.0) + e)
            s2 = s * s
            p = np.float32(2.0 / 15.0)
            p = p * s2 + np.float32(2.0 / 13.0)
            p = p * s2 + np.float32(2.0 / 11.0)
            p = p * s2 + np.float32(2.0 / 9.0)
            p = p * s2 + np.float32(2.0 / 7.0)
            p = p * s2 + np.float32(2.0 / 5.0)
            p = p * s2 + np.float32(2.0 / 3.0)
            p = p * s2 + np.float32(2.0)
            return max(x, np.float32(0.0)) + s * p

        return fast_softplus32
    return lambda x: np.log1p(np.exp(x)) if x <= 20.0 else x


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _step_sizes(delta_row, bias_d, softplus, dtbuf):  # pragma: no cover - compiled
    """``dtbuf[:len] = softplus(delta_row + bias_d)`` (or without softplus); a vectorised loop."""
    if softplus:
        for i in range(delta_row.shape[0]):
            dtbuf[i] = _softplus(delta_row[i] + bias_d)
    else:
        for i in range(delta_row.shape[0]):
            dtbuf[i] = delta_row[i] + bias_d


@nb.njit(parallel=True, cache=True, nogil=True, fastmath=True, error_model="numpy")
def scan_fwd(u, delta, A, Bm, Cm, Dv, z, bias, var_b, var_c, has_d, has_z, has_bias, softplus, T,
             out, hs, last):  # pragma: no cover - compiled
    Bt, Dm, L = u.shape
    N = A.shape[1]
    gsb = Dm // Bm.shape[1] if var_b else 1
    gsc = Dm // Cm.shape[1] if var_c else 1
    for bd in nb.prange(Bt * Dm):
        b = bd // Dm
        d = bd % Dm
        # B/C index (bb, bg, l or d, n): variable (b, group, l, n) or constant (0, 0, d, n)
        bb, bg = (b, d // gsb) if var_b else (0, 0)
        cb, cg = (b, d // gsc) if var_c else (0, 0)
        h = np.zeros(N, dtype=u.dtype)
        zero = h[0]  # typed constants: numba would widen float32 with Python int/float literals
        one = zero + np.float32(1)
        bias_d = bias[d] if has_bias else zero
        dtbuf = np.empty(T, dtype=u.dtype)
        for c in range((L + T - 1) // T):
            l0 = c * T
            l1 = min(L, l0 + T)
            for n in range(N):
                hs[b, d, c, n] = h[n]
            _step_sizes(delta[b, d][l0:l1], bias_d, softplus, dtbuf)
            for l in range(l0, l1):
                dtv = dtbuf[l - l0]
                uv = u[b, d, l]
                xu = dtv * uv
                bl = l if var_b else d
                cl = l if var_c else d
                acc = zero
                for n in range(N):
                    hn = _exp(dtv * A[d, n]) * h[n] + xu * Bm[bb, bg, bl, n]
                    h[n] = hn
                    acc += Cm[cb, cg, cl, n] * hn
                if has_d:
                    acc += Dv[d] * uv
                if has_z:
                    zv = z[b, d, l]
                    acc *= zv / (one + _exp(-zv))
                out[b, d, l] = acc
        for n in range(N):
            last[b, d, n] = h[n]


@nb.njit(parallel=True, cache=True, nogil=True, fastmath=True, error_model="numpy")
def scan_bwd(u, delta, A, Bm, Cm, Dv, z, bias, var_b, var_c, has_d, has_z, has_bias, softplus, T,
             hs, gout, glast, bs,
             du, ddelta, dz, dA, dD, dbias, dB_var, dC_var, dB_const, dC_const):  # pragma: no cover - compiled
    """Backward; tasks are (batch, block of ``bs`` consecutive channels).

    Outputs: ``du``, ``ddelta``, ``dz`` ``(Bt, D, L)``; per-batch partials ``dA`` ``(Bt, D, N)``,
    ``dD``, ``dbias`` ``(Bt, D)``; variable ``dB_var``/``dC_var`` ``(Bt, D // bs, L, N)``
    per-block partials (each block lies in one group); constant ``dB_const``/``dC_const``
    ``(Bt, D, N)`` per-batch partials.
    """
    Bt, Dm, L = u.shape
    N = A.shape[1]
    nblk = Dm // bs
    gsb = Dm // Bm.shape[1] if var_b else 1
    gsc = Dm // Cm.shape[1] if var_c else 1
    nc = hs.shape[2]
    for task in nb.prange(Bt * nblk):
        b = task // nblk
        blk = task % nblk
        hbuf = np.empty((T + 1, N), dtype=u.dtype)
        abuf = np.empty((T, N), dtype=u.dtype)
        dtbuf = np.empty(T, dtype=u.dtype)
        dh = np.empty(N, dtype=u.dtype)
        zero = np.zeros(1, dtype=u.dtype)[0]  # typed constants (see scan_fwd)
        one = zero + np.float32(1)
        for d in range(blk * bs, (blk + 1) * bs):
            gb = d // gsb
            gc = d // gsc
            bb, bg = (b, gb) if var_b else (0, 0)
            cb, cg = (b, gc) if var_c else (0, 0)
            bias_d = bias[d] if has_bias else zero
            for n in range(N):
                dh[n] = glast[b, d, n]
            for c in range(nc - 1, -1, -1):
                l0 = c * T
                l1 = min(L, l0 + T)
                for n in range(N):
                    hbuf[0, n] = hs[b, d, c, n]
                _step_sizes(delta[b, d][l0:l1], bias_d, softplus, dtbuf)
                for l in range(l0, l1):  # recompute the chunk's decays and states
                    i = l - l0
                    dtv = dtbuf[i]
                    xu = dtv * u[b, d, l]
                    bl = l if var_b else d
                    for n in range(N):
                        a = _exp(dtv * A[d, n])
                        abuf[i, n] = a
                        hbuf[i + 1, n] = a * hbuf[i, n] + xu * Bm[bb, bg, bl, n]
                for l in range(l1 - 1, l0 - 1, -1):  # adjoint recurrence
                    i = l - l0
                    dtv = dtbuf[i]
                    uv = u[b, d, l]
                    bl = l if var_b else d
                    cl = l if var_c else d
                    gyv = gout[b, d, l]
                    if has_z:  # out = (y + D·u)·silu(z)
                        zv = z[b, d, l]
                        ypre = Dv[d] * uv if has_d else zero
                        for n in range(N):
                            ypre += Cm[cb, cg, cl, n] * hbuf[i + 1, n]
                        sig = one / (one + _exp(-zv))
                        dz[b, d, l] = gyv * ypre * sig * (one + zv * (one - sig))
                        gyv = gyv * zv * sig
                    sdu = Dv[d] * gyv if has_d else zero
                    if has_d:
                        dD[b, d] += gyv * uv
                    sdb = zero  # Σ_n dh·B
                    sda = zero  # Σ_n dh·a·h_{t-1}·A
                    for n in range(N):
                        dhn = dh[n] + gyv * Cm[cb, cg, cl, n]
                        if var_c:
                            dC_var[b, blk, l, n] += gyv * hbuf[i + 1, n]
                        else:
                            dC_const[b, d, n] += gyv * hbuf[i + 1, n]
                        if var_b:
                            dB_var[b, blk, l, n] += dhn * dtv * uv
                        else:
                            dB_const[b, d, n] += dhn * dtv * uv
                        sdb += dhn * Bm[bb, bg, bl, n]
                        a = abuf[i, n]
                        dlog = dhn * a * hbuf[i, n]
                        sda += dlog * A[d, n]
                        dA[b, d, n] += dlog * dtv
                        dh[n] = dhn * a
                    du[b, d, l] = sdu + sdb * dtv
                    gdt = sdb * uv + sda
                    if softplus:
                        raw = delta[b, d, l] + bias_d
                        gdt = gdt / (one + _exp(-raw)) if raw <= 20.0 else gdt
                    ddelta[b, d, l] = gdt
                    if has_bias:
                        dbias[b, d] += gdt


@nb.njit(parallel=True, cache=True, nogil=True, fastmath=True, error_model="numpy")
def ss2d_fwd(x, delta, A, Bm, Cm, Dv, bias, idx, has_d, has_bias, softplus, out):  # pragma: no cover - compiled
    """Fused SS2D forward (no saved states): route → K-direction scan → merge, one pass per direction.

    ``x``, ``out``: ``(Bt, D, L)`` pixel domain; ``delta``: ``(Bt, K, D, L)``; ``A``: ``(K*D, N)``;
    ``Bm``, ``Cm``: ``(Bt, K, L, N)`` (pixel domain, L before N); ``Dv``, ``bias``: ``(K*D,)``;
    ``idx``: ``(K, L)``, step ``t`` of direction ``k`` visits pixel ``idx[k, t]``. One task per
    ``(batch, channel)`` owns ``out[b, d, :]`` and adds every direction's output to it in order
    ``k = 0..K-1``, so the result does not depend on the thread count.
    """
    Bt, Dm, L = x.shape
    K = idx.shape[0]
    N = A.shape[1]
    for bd in nb.prange(Bt * Dm):
        b = bd // Dm
        d = bd % Dm
        h = np.zeros(N, dtype=x.dtype)
        zero = h[0]
        dtbuf = np.empty(L, dtype=x.dtype)
        for p in range(L):
            out[b, d, p] = zero
        for k in range(K):
            kd = k * Dm + d
            bias_d = bias[kd] if has_bias else zero
            dv = Dv[kd] if has_d else zero
            _step_sizes(delta[b, k, d], bias_d, softplus, dtbuf)  # pixel order, vectorised
            for n in range(N):
                h[n] = zero
            for t in range(L):
                p = idx[k, t]
                uv = x[b, d, p]
                dtv = dtbuf[p]
                xu = dtv * uv
                acc = dv * uv
                for n in range(N):
                    hn = _exp(dtv * A[kd, n]) * h[n] + xu * Bm[b, k, p, n]
                    h[n] = hn
                    acc += Cm[b, k, p, n] * hn
                out[b, d, p] += acc


@nb.njit(parallel=True, cache=True, nogil=True, fastmath=True, error_model="numpy")
def ss2d_fwd_cl(x, delta, A_knd, Bm, Cm, Dv, bias, idx, has_d, has_bias, softplus, CB, out):  # pragma: no cover
    """Channel-last fused SS2D forward: :func:`ss2d_fwd` on ``(…, L, D)`` memory, vectorised over channels.

    ``x``, ``out``: ``(Bt, L, D)``; ``delta``: ``(Bt, L, K, D)``; ``A_knd``: ``(K, N, D)``; ``Bm``, ``Cm``:
    ``(Bt, L, K, N)``; ``Dv``, ``bias``: ``(K*D,)``; ``idx``: ``(K, L)``. A task owns ``CB`` channels of
    one batch element: every direction visits the same pixels for all channels, so the recurrence runs
    on ``CB`` channels at once (contiguous loads, SIMD ``exp``), directions in order ``k = 0..K-1``.
    """
    Bt, L, Dm = x.shape
    K = idx.shape[0]
    N = A_knd.shape[1]
    nblk = (Dm + CB - 1) // CB
    for task in nb.prange(Bt * nblk):
        b = task // nblk
        c0 = (task % nblk) * CB
        w = min(Dm, c0 + CB) - c0
        h = np.zeros((N, CB), dtype=x.dtype)
        zero = h[0, 0]
        dtv = np.empty(CB, dtype=x.dtype)
        xu = np.empty(CB, dtype=x.dtype)
        acc = np.empty(CB, dtype=x.dtype)
        bj = np.zeros(CB, dtype=x.dtype)
        dj = np.zeros(CB, dtype=x.dtype)
        for p in range(L):
            for j in range(w):
                out[b, p, c0 + j] = zero
        for k in range(K):
            for j in range(w):
                bj[j] = bias[k * Dm + c0 + j] if has_bias else zero
                dj[j] = Dv[k * Dm + c0 + j] if has_d else zero
            for n in range(N):
                for j in range(CB):
                    h[n, j] = zero
            for t in range(L):
                p = idx[k, t]
                for j in range(w):
                    v = delta[b, p, k, c0 + j] + bj[j]
                    if softplus:
                        v = _softplus(v)
                    dtv[j] = v
                    uv = x[b, p, c0 + j]
                    xu[j] = v * uv
                    acc[j] = dj[j] * uv
                for n in range(N):
                    bv = Bm[b, p, k, n]
                    cv = Cm[b, p, k, n]
                    for j in range(w):
                        hn = _exp(dtv[j] * A_knd[k, n, c0 + j]) * h[n, j] + xu[j] * bv
                        h[n, j] = hn
                        acc[j] += cv * hn
                for j in range(w):
                    out[b, p, c0 + j] += acc[j]

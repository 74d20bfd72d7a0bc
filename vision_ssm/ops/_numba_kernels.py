"""Numba kernels of the ``numba`` backend (imported only when that backend is used).

Both kernels run one sequential loop over ``L`` per ``(batch, channel)`` with the ``N`` states
in a small local array, parallel (``prange``) over batch × channels. Arrays (all C-contiguous,
one float dtype — float32 or float64):

* ``u``, ``dt``: ``(Bt, D, L)``; ``dt`` is the final step size (after bias and softplus);
* ``A``: ``(D, N)``;
* ``Bm``, ``Cm``: variable ``(Bt, G, L, N)`` (note: L before N) or constant ``(1, 1, D, N)``.

The forward stores the state at the start of every chunk of ``T`` steps, ``hs (Bt, D, nc, N)``.
The backward recomputes each chunk's states from ``hs`` into a ``(T+1, N)`` buffer and runs
the adjoint recurrence backwards. Reductions over channels (``dB``/``dC`` of variable B/C) go
to per-block partial buffers summed afterwards in a fixed order, so the backward is
deterministic and independent of the thread count.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True, nogil=True)
def scan_fwd(u, dt, A, Bm, Cm, var_b, var_c, T, y, hs, last):  # pragma: no cover - compiled
    Bt, Dm, L = u.shape
    N = A.shape[1]
    gsb = Dm // Bm.shape[1] if var_b else 1
    gsc = Dm // Cm.shape[1] if var_c else 1
    for bd in nb.prange(Bt * Dm):
        b = bd // Dm
        d = bd % Dm
        gb = d // gsb
        gc = d // gsc
        h = np.zeros(N, dtype=u.dtype)
        for l in range(L):
            if l % T == 0:
                hs[b, d, l // T, :] = h
            dtv = dt[b, d, l]
            xu = dtv * u[b, d, l]
            acc = h[0] * 0
            for n in range(N):
                bv = Bm[b, gb, l, n] if var_b else Bm[0, 0, d, n]
                cv = Cm[b, gc, l, n] if var_c else Cm[0, 0, d, n]
                hn = np.exp(dtv * A[d, n]) * h[n] + xu * bv
                h[n] = hn
                acc += cv * hn
            y[b, d, l] = acc
        last[b, d, :] = h


@nb.njit(parallel=True, cache=True, nogil=True)
def scan_bwd(u, dt, A, Bm, Cm, var_b, var_c, T, hs, gy, glast, bs,
             du, ddt, dA, dB_var, dC_var, dB_const, dC_const):  # pragma: no cover - compiled
    """Backward; tasks are (batch, block of ``bs`` consecutive channels).

    Outputs: ``du``, ``ddt`` ``(Bt, D, L)``; ``dA`` ``(Bt, D, N)`` per-batch partials;
    variable ``dB_var``/``dC_var`` ``(Bt, D // bs, L, N)`` per-block partials (each block lies
    in one group); constant ``dB_const``/``dC_const`` ``(Bt, D, N)`` per-batch partials.
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
        dh = np.empty(N, dtype=u.dtype)
        for d in range(blk * bs, (blk + 1) * bs):
            gb = d // gsb
            gc = d // gsc
            for n in range(N):
                dh[n] = glast[b, d, n]
            for c in range(nc - 1, -1, -1):
                l0 = c * T
                l1 = min(L, l0 + T)
                for n in range(N):
                    hbuf[0, n] = hs[b, d, c, n]
                for l in range(l0, l1):  # recompute the chunk's states
                    i = l - l0
                    dtv = dt[b, d, l]
                    xu = dtv * u[b, d, l]
                    for n in range(N):
                        bv = Bm[b, gb, l, n] if var_b else Bm[0, 0, d, n]
                        a = np.exp(dtv * A[d, n])
                        abuf[i, n] = a
                        hbuf[i + 1, n] = a * hbuf[i, n] + xu * bv
                for l in range(l1 - 1, l0 - 1, -1):  # adjoint recurrence
                    i = l - l0
                    dtv = dt[b, d, l]
                    uv = u[b, d, l]
                    gyv = gy[b, d, l]
                    sdb = dh[0] * 0  # Σ_n dh·B
                    sda = dh[0] * 0  # Σ_n dh·a·h_{t-1}·A
                    for n in range(N):
                        bv = Bm[b, gb, l, n] if var_b else Bm[0, 0, d, n]
                        cv = Cm[b, gc, l, n] if var_c else Cm[0, 0, d, n]
                        dhn = dh[n] + gyv * cv
                        gc_n = gyv * hbuf[i + 1, n]
                        if var_c:
                            dC_var[b, blk, l, n] += gc_n
                        else:
                            dC_const[b, d, n] += gc_n
                        gb_n = dhn * dtv * uv
                        if var_b:
                            dB_var[b, blk, l, n] += gb_n
                        else:
                            dB_const[b, d, n] += gb_n
                        sdb += dhn * bv
                        a = abuf[i, n]
                        dlog = dhn * a * hbuf[i, n]
                        sda += dlog * A[d, n]
                        dA[b, d, n] += dlog * dtv
                        dh[n] = dhn * a
                    du[b, d, l] = sdb * dtv
                    ddt[b, d, l] = sdb * uv + sda

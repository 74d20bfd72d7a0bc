"""Whole-image forward of the fused SS2D core at ``N = 1``: the K directions merged on chip.

Parked experiment (see ``README.md`` here): formerly ``vision_ssm/ops/triton/_image.py``, run by
``ss2d_scan_triton`` for channel-first inputs without gradients; no model reached it. Import it
from the repository root (``benchmarks.experiments.whole_image.kernel``); :func:`ss2d_forward`
is the former dispatch.

The slab design of :mod:`._fwd` runs each direction in its own programs and sums per-direction
output slabs afterwards: an extra write and read of ``K`` slabs, and ``x`` read once per
direction (at ``N = 1`` that design stays ≥ 2.8× above the memory floor, ``benchmarks/README.md``).
At ``N = 1`` one channel's whole image fits in registers, so here one program owns one
(batch, channel) pair and all ``H × W`` pixels (padded to ``HP × WP``, powers of two). It walks
every direction over the image in registers, accumulates the K outputs there and writes ``y``
once: ``x`` is read once (twice if some walks are column-wise), ``δ``/``B``/``C`` once per
direction.

Two register frames hold the image:

- **row frame** ``[HP*WP/SR, SR]``: chunks of ``SR`` pixels along a row (one 16-byte load), in
  raster order. Row-major walks (forward or reversed) scan it: an inclusive scan inside each
  chunk (in-thread), a scan of the chunk totals, and the carried state applied to each chunk.
- **column frame** ``[HP/8*WP, 8]``: chunks of 8 pixels down a column, the lanes running along
  the row (so the loads stay coalesced) and the chunk axis in-thread (built with ``tl.join``,
  whose new axis is always held by one thread). Column-major walks scan it the same way; their
  summed output is moved to the row frame once, through shared memory.

Reversed walks flip the in-thread chunk axis (free) and scan the chunk totals in reverse.
Padded pixels get ``δ = 0`` (decay 1, input 0), the identity of the scan, so they pass the state
through wherever they fall in a walk. The result is deterministic (fixed summation order).

Only row-major or column-major raster walks, forward or reversed, can be expressed this way
(``sweep`` with ``K`` = 1, 2, 4: VMamba's cross-scan); :func:`direction_codes` recognises them from
the index tensor. The inputs must be channel-first (unit pixel stride), the forward must need no
gradients (nothing is saved for a backward) and the image must have ``8 ≤ H`` and
``HP·WP ≤ 8192``; :func:`image_plan` checks all of it and callers use the slab kernels otherwise.

Tensor layouts (logical shapes; unit pixel stride, other strides in elements):
    x ``(Bt, Dm, L)``; δ ``(Bt, K, Dm, L)``; B, C ``(Bt, K, 1, L)``; A ``(K*Dm, 1)``;
    D, delta_bias ``(K*Dm,)``; out ``(Bt, Dm, L)`` contiguous; ``L = H*W`` raster order.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from vision_ssm.ops.geometry import DirectionSet
from vision_ssm.ops.triton._fwd import LN2, LOG2E, _combine, _log2
from vision_ssm.ops.triton._launch import _I32_MAX, offset_span

# Largest padded image a program holds (16 pixels per thread at 16 warps).
MAX_TILE = 8192
# Register cap. Unbounded, ptxas took ~235 per thread (one 8-warp program per SM); at 128 two fit,
# with a few spills (H100: 0.77 -> 0.53 ms at (128, 4·96, 3136, 1); caps of 96 and 64 were slower).
# It also keeps 16-warp programs launchable (16 · 32 · 128 = the 65536 registers of an SM).
MAX_REGS = 128


@triton.jit
def _chunk_carry(aT, bT, REV: tl.constexpr):
    """State entering each chunk: the exclusive scan of the chunk totals ``(aT, bT)`` ``[M]`` (in
    walk order), shifted by one chunk with ``tl.gather``; 0 for the first chunk of the walk."""
    M: tl.constexpr = aT.shape[0]
    _, hT = tl.associative_scan((aT, bT), 0, _combine, reverse=REV)  # state at each chunk's end
    ms = tl.arange(0, M)
    if REV:
        prev = tl.minimum(ms + 1, M - 1)
        first = ms == M - 1
    else:
        prev = tl.maximum(ms - 1, 0)
        first = ms == 0
    return tl.where(first, 0.0, tl.gather(hT, prev, 0))


@triton.jit
def _chunk_scan(a, b, AXIS: tl.constexpr, REV: tl.constexpr):
    """Inclusive scan of ``(a, b)`` along the chunk axis. A reversed scan flips, scans forward and
    flips back: Triton lowers ``reverse=True`` along an in-thread axis to lane shuffles (~350 per
    direction in the sm_90 build), while a flip along an in-thread axis is register renaming."""
    if REV:
        aS, bS = tl.associative_scan((tl.flip(a, AXIS), tl.flip(b, AXIS)), AXIS, _combine)
        return tl.flip(aS, AXIS), tl.flip(bS, AXIS)
    else:
        return tl.associative_scan((a, b), AXIS, _combine)


@triton.jit
def _walk_rows(a, b, REV: tl.constexpr):
    """States ``h`` of ``h = a·h_prev + b`` (``h`` starting at 0) along an ``[M, S]`` tile walked
    in flat order ``m*S + s`` (``REV``: backward). The chunk axis ``S`` is memory-contiguous, so the
    loads vectorise and most of it is held in-thread: an inclusive scan inside each chunk, then
    the chunk totals' carry."""
    S: tl.constexpr = a.shape[1]
    aS, bS = _chunk_scan(a, b, 1, REV)
    ss = tl.arange(0, S)[None, :]
    last = ss == (0 if REV else S - 1)
    carry = _chunk_carry(tl.sum(tl.where(last, aS, 0.0), axis=1), tl.sum(tl.where(last, bS, 0.0), axis=1), REV)
    return bS + aS * carry[:, None]


@triton.jit
def _walk_cols(a, b, WP: tl.constexpr, REV: tl.constexpr):
    """Like :func:`_walk_rows` for an ``[Q*WP, S]`` tile holding pixel ``(q*S + s, w)`` at
    ``[q*WP + w, s]``, walked column by column (flat order ``w*Q*S + q*S + s``); the chunk axis
    ``S`` is in-thread (built by :func:`_stack8`)."""
    S: tl.constexpr = a.shape[1]
    Q: tl.constexpr = a.shape[0] // WP
    aS, bS = _chunk_scan(a, b, 1, REV)
    ss = tl.arange(0, S)[None, :]
    last = ss == (0 if REV else S - 1)
    # chunk totals from (q, w) order to walk order (w, q) and back
    aT = tl.reshape(tl.trans(tl.reshape(tl.sum(tl.where(last, aS, 0.0), axis=1), [Q, WP])), [WP * Q])
    bT = tl.reshape(tl.trans(tl.reshape(tl.sum(tl.where(last, bS, 0.0), axis=1), [Q, WP])), [WP * Q])
    carry = tl.reshape(tl.trans(tl.reshape(_chunk_carry(aT, bT, REV), [WP, Q])), [Q * WP])
    return bS + aS * carry[:, None]


@triton.jit
def _stack8(r0, r1, r2, r3, r4, r5, r6, r7):
    """``[N]`` × 8 → ``[N, 8]`` with ``r_s`` at ``[:, s]``. Built from ``tl.join``, whose new axis
    is always held in-thread: the column frame's chunk axis then lives in registers whatever
    layout Triton picks for the loads (its coalescing heuristics differ between versions)."""
    # o[n, i, j, k] = r_{4i + 2j + k} (the innermost join picks i): a plain reshape then gives
    # column 4i + 2j + k, with no permute (which would leave a layout the scan cannot use)
    o = tl.join(tl.join(tl.join(r0, r4), tl.join(r2, r6)), tl.join(tl.join(r1, r5), tl.join(r3, r7)))
    return tl.reshape(o, [r0.shape[0], 8])


@triton.jit
def _col_chunks(ptr, off, h0, wok, H: tl.constexpr, W: tl.constexpr, OTHER: tl.constexpr):
    """``[N, 8]`` fp32: ``[n, s]`` = ``ptr[off[n] + s*W]``, pixel ``(h0[n] + s, w)`` (``OTHER``
    outside the image)."""
    return _stack8(
        tl.load(ptr + off, mask=wok & (h0 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + W, mask=wok & (h0 + 1 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 2 * W, mask=wok & (h0 + 2 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 3 * W, mask=wok & (h0 + 3 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 4 * W, mask=wok & (h0 + 4 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 5 * W, mask=wok & (h0 + 5 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 6 * W, mask=wok & (h0 + 6 < H), other=OTHER).to(tl.float32),
        tl.load(ptr + off + 7 * W, mask=wok & (h0 + 7 < H), other=OTHER).to(tl.float32),
    )


@triton.jit
def _delta2(x, mask, bias2, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """``δ / ln 2`` in fp32 from the loaded ``dt`` ``x`` (δ = softplus(dt + bias) or dt + bias),
    0 at masked (padded) pixels: decay 1, input 0. Working in log2 units saves multiplies per
    element: the decay is ``exp2(δ2·A)``, the input ``δ2·u·B`` (the sum of the K outputs is scaled
    by ``ln 2`` once at the end); ``bias2 = bias / ln 2``.
    With ``SOFTPLUS`` the caller loads ``-inf`` at padded pixels (softplus(-inf) = 0, no select
    needed)."""
    x2 = x * LOG2E
    if HAS_BIAS:
        x2 = x2 + bias2
    if SOFTPLUS:  # softplus(x) / ln 2 = log2(1 + 2^(x / ln 2)); x itself above 20 (as mamba-ssm)
        return tl.where(x2 <= 20.0 * LOG2E, _log2(1.0 + tl.exp2(x2)), x2)
    else:
        return tl.where(mask, x2, 0.0)


@triton.jit
def _row_direction(u, pos, m, k, c, pid_b, Dm, dt_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, sd_b, sd_k, sd_c, sB_b, sB_k,
                   sC_b, sC_k, REV: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """``h·C`` of row-wise direction ``k`` in the row frame (``[M, SR]``), in units of ``1/ln 2``."""
    pc = k * Dm + c
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + pc).to(tl.float32) * LOG2E
    dtv = tl.load(dt_ptr + pid_b * sd_b + k * sd_k + c * sd_c + pos, mask=m,
                  other=float("-inf") if SOFTPLUS else 0.0).to(tl.float32)
    d2 = _delta2(dtv, m, bias, HAS_BIAS, SOFTPLUS)
    Bv = tl.load(B_ptr + pid_b * sB_b + k * sB_k + pos, mask=m, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + pid_b * sC_b + k * sC_k + pos, mask=m, other=0.0).to(tl.float32)
    Ak = tl.load(A_ptr + pc).to(tl.float32)
    return _walk_rows(tl.exp2(d2 * Ak), d2 * u * Bv, REV) * Cv


@triton.jit
def _col_direction(uT, offT, h0, wok, mT, k, c, pid_b, Dm, dt_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, sd_b, sd_k, sd_c,
                   sB_b, sB_k, sC_b, sC_k, H: tl.constexpr, W: tl.constexpr, WP: tl.constexpr, REV: tl.constexpr,
                   HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """``h·C`` of column-wise direction ``k`` in the column frame (``[Q*WP, 8]``), in units of
    ``1/ln 2``."""
    pc = k * Dm + c
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + pc).to(tl.float32) * LOG2E
    dt_base = dt_ptr + pid_b * sd_b + k * sd_k + c * sd_c
    d2 = _delta2(_col_chunks(dt_base, offT, h0, wok, H, W, float("-inf") if SOFTPLUS else 0.0), mT, bias,
                 HAS_BIAS, SOFTPLUS)
    Bv = _col_chunks(B_ptr + pid_b * sB_b + k * sB_k, offT, h0, wok, H, W, 0.0)
    Cv = _col_chunks(C_ptr + pid_b * sC_b + k * sC_k, offT, h0, wok, H, W, 0.0)
    Ak = tl.load(A_ptr + pc).to(tl.float32)
    return _walk_cols(tl.exp2(d2 * Ak), d2 * uT * Bv, WP, REV) * Cv


@triton.jit
def _image_fwd_kernel(
    x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, Dp_ptr, bias_ptr, out_ptr,
    Dm,
    sx_b, sx_c, sd_b, sd_k, sd_c, sB_b, sB_k, sC_b, sC_k, so_b, so_c,
    H: tl.constexpr, W: tl.constexpr, K: tl.constexpr, CODES: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr,
    SR: tl.constexpr, GROUPED: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ANY_T: tl.constexpr,
):
    c = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    # row frame: [M, SR], flat index f = h*WP + w; chunks of SR pixels along a row (one vector load)
    M: tl.constexpr = HP * WP // SR
    f = tl.arange(0, M)[:, None] * SR + tl.arange(0, SR)[None, :]
    hh = f // WP
    ww = f % WP
    m = (hh < H) & (ww < W)
    pos = hh * W + ww  # raster index
    x_base = x_ptr + pid_b * sx_b + c * sx_c
    u = tl.load(x_base + pos, mask=m, other=0.0).to(tl.float32)
    acc = tl.zeros([M, SR], dtype=tl.float32)
    Dsum = 0.0
    if HAS_D:
        for k in tl.static_range(K):
            Dsum += tl.load(Dp_ptr + k * Dm + c).to(tl.float32)
    if ANY_T:
        # column frame: [Q*WP, 8] holding pixel (q*8 + s, w) at [q*WP + w, s]; chunks of 8 pixels
        # down a column
        Q: tl.constexpr = HP // 8
        col = tl.arange(0, Q * WP)
        h0 = (col // WP) * 8
        wT = col % WP
        wok = wT < W
        offT = h0 * W + wT
        if not SOFTPLUS:
            mT = _stack8(wok & (h0 < H), wok & (h0 + 1 < H), wok & (h0 + 2 < H), wok & (h0 + 3 < H),
                         wok & (h0 + 4 < H), wok & (h0 + 5 < H), wok & (h0 + 6 < H), wok & (h0 + 7 < H))
        else:
            mT = None
        accT = tl.zeros([Q * WP, 8], dtype=tl.float32)
    # Direction k's code bits are written inline: shifts and subtraction of constexprs stay
    # compile-time constants (a name assigned in the unrolled loop would become a tensor).
    # GROUPED: row-wise directions (pass 0), then column-wise ones (pass 1), so that each frame's
    # inputs live only in its pass. Otherwise one pass in direction order: a direction's loads can
    # overlap the previous direction's arithmetic.
    if ANY_T and not GROUPED:
        uT = _col_chunks(x_base, offT, h0, wok, H, W, 0.0)
    for p in tl.static_range(1 + GROUPED):
        if p == 1:
            if HAS_D:  # now, so that u is dead during the column pass (acc is scaled by ln 2 below)
                acc += (Dsum * LOG2E) * u
            if ANY_T:
                uT = _col_chunks(x_base, offT, h0, wok, H, W, 0.0)
        for k in tl.static_range(K):
            if (CODES >> (2 * k)) - 2 * (CODES >> (2 * k + 1)):  # column-wise
                if p == GROUPED:
                    accT += _col_direction(uT, offT, h0, wok, mT, k, c, pid_b, Dm, dt_ptr, A_ptr, B_ptr, C_ptr,
                                           bias_ptr, sd_b, sd_k, sd_c, sB_b, sB_k, sC_b, sC_k, H, W, WP,
                                           (CODES >> (2 * k + 1)) - 2 * (CODES >> (2 * k + 2)), HAS_BIAS, SOFTPLUS)
            elif p == 0:
                acc += _row_direction(u, pos, m, k, c, pid_b, Dm, dt_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, sd_b, sd_k,
                                      sd_c, sB_b, sB_k, sC_b, sC_k, (CODES >> (2 * k + 1)) - 2 * (CODES >> (2 * k + 2)),
                                      HAS_BIAS, SOFTPLUS)
    if ANY_T:  # [Q*WP, 8] -> [Q, WP, 8] -> [Q, 8, WP] = [HP, WP] -> [M, SR]
        acc += tl.reshape(tl.permute(tl.reshape(accT, [Q, WP, 8]), (0, 2, 1)), [M, SR])
    acc = acc * LN2  # the inputs were δ2·u·B = (δ/ln 2)·u·B
    if HAS_D and not GROUPED:
        acc += Dsum * u
    tl.store(out_ptr + pid_b * so_b + c * so_c + pos, acc.to(out_ptr.dtype.element_ty), mask=m)


def direction_codes(dirs: DirectionSet) -> int | None:
    """The direction codes of the whole-image kernel (2 bits per direction, direction ``k`` at bits
    ``2k``; bit 0: column-major, bit 1: reversed), read from the set's :attr:`~DirectionSet.walks`,
    or ``None`` if some direction is not a raster walk (or the set is custom), ``K > 8``, ``H < 8``
    (the column frame's chunks are 8 pixels) or the padded image is larger than :data:`MAX_TILE`."""
    H, W, K = dirs.H, dirs.W, dirs.K
    if dirs.walks is None or triton.next_power_of_2(H) * triton.next_power_of_2(W) > MAX_TILE or H < 8 or K > 8:
        return None
    codes = 0
    for k, walk in enumerate(dirs.walks):
        if not walk.raster:
            return None
        codes |= (int(walk.column_major) | (int(walk.reversed) << 1)) << (2 * k)
    return codes


def image_plan(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, dirs: DirectionSet) -> int | None:
    """The direction codes if the whole-image kernel can run this fused SS2D forward, else ``None``.

    It needs ``N = 1``, directions that are raster walks (:func:`direction_codes`), channel-first
    inputs (unit pixel stride in ``x``, ``delta``, ``B``, ``C``: on channel-last inputs the slab
    kernels are faster than copying) and in-batch offsets below 2³¹.
    """
    if A.shape[-1] != 1:
        return None
    if x.stride(2) != 1 or delta.stride(3) != 1 or B.stride(3) != 1 or C.stride(3) != 1:
        return None
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return None
    if not all(_batch_slice_fits_i32(t) for t in (x, delta, B, C)):
        return None
    return direction_codes(dirs)


def _batch_slice_fits_i32(t: Tensor) -> bool:
    """Whether every element offset inside one batch element of ``t`` fits in int32 (the kernel
    adds the batch offset in 64-bit and the rest in 32-bit arithmetic)."""
    return offset_span(t, 1) <= _I32_MAX


def _warps(lanes: int) -> int:
    """Warps per program: 16 pixels per thread (1..16 warps)."""
    return max(1, min(16, lanes // 32))


def image_forward(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                  delta_bias: Tensor | None, softplus: bool, codes: int, H: int, W: int,
                  num_warps: int | None = None, maxnreg: int | None = None, grouped: bool | None = None) -> Tensor:
    """Launch :func:`_image_fwd_kernel`: ``y`` ``(Bt, Dm, L)`` in ``x``'s dtype, contiguous.

    Args as in the module docstring (unit pixel stride: see :func:`image_plan`); ``codes``
    from :func:`direction_codes`; ``num_warps``, ``maxnreg`` and ``grouped`` (the direction order,
    see the kernel) override the defaults (benchmarks, tests).
    """
    Bt, Dm, L = x.shape
    K = delta.shape[1]
    HP, WP = triton.next_power_of_2(H), triton.next_power_of_2(W)
    any_t = any((codes >> (2 * k)) & 1 for k in range(K))
    SR = min(16 // x.element_size(), HP * WP)  # one 16-byte vector per row chunk
    out = torch.empty(Bt, Dm, L, device=x.device, dtype=x.dtype)
    nw = num_warps or _warps(HP * WP // 16)
    # Direction order (H100, bf16): grouped by frame won for the 2-warp programs of a 28x28 image
    # (0.220 vs 0.264 ms at (64, 4·384, 784, 1)), direction order for the 8-warp ones of 56x56
    # (0.529 vs 0.599 ms at (128, 4·96, 3136, 1)), whose loads then overlap the previous direction.
    _image_fwd_kernel[(Dm, Bt)](
        x, delta, A, B, C, D if D is not None else A, delta_bias if delta_bias is not None else A, out,
        Dm,
        x.stride(0), x.stride(1), delta.stride(0), delta.stride(1), delta.stride(2),
        B.stride(0), B.stride(1), C.stride(0), C.stride(1), out.stride(0), out.stride(1),
        H=H, W=W, K=K, CODES=codes, HP=HP, WP=WP, SR=SR, HAS_D=D is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(softplus), ANY_T=any_t, GROUPED=nw < 8 if grouped is None else grouped, num_warps=nw,
        maxnreg=maxnreg or MAX_REGS,
    )
    return out


def ss2d_forward(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                 delta_bias: Tensor | None, dirs: DirectionSet, delta_softplus: bool = True) -> Tensor:
    """The fused SS2D core as the library ran it while this kernel was wired in: an eager forward
    without gradients that :func:`image_plan` accepts runs the whole-image kernel (contiguous
    output), everything else :func:`vision_ssm.ops.triton.scan.ss2d_scan_triton` (same contract)."""
    from vision_ssm.ops.scan.tracing import under_tracing
    from vision_ssm.ops.triton.scan import _needs_grad, ss2d_scan_triton

    if not _needs_grad(x, delta, A, B, C, D, delta_bias) and not under_tracing(x):
        codes = image_plan(x, delta, A, B, C, dirs)
        if codes is not None:
            return image_forward(x, delta, A, B, C, D, delta_bias, bool(delta_softplus), codes, dirs.H, dirs.W)
    return ss2d_scan_triton(x, delta, A, B, C, D, delta_bias, dirs, delta_softplus)

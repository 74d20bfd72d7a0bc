"""Tiled Triton copy between channel-first and channel-last memory of the scan tensors.

The fused SS2D kernels read channel-last memory; channel-first callers' ``x``/``δ``/``B``/``C``
are copied once, and the gradients copied back. PyTorch's elementwise copy reads such a
transposition with a large stride, one 32-byte sector per element (the channel-first fused
forward spent over a millisecond in these copies at ``(64, 4·192, 3136, 16)``,
``benchmarks/README.md``). Here each program moves one ``[BC, BL]`` tile of one (batch,
direction) slice: loaded along the source's unit-stride axis, stored along the destination's,
with the transposition in between done by Triton (through shared memory).

Tensor layouts: ``src`` and ``dst`` of one shape ``(Bt, C, L)`` or ``(Bt, K, C, L)``, any strides
and dtypes; where offsets inside one batch element do not fit in int32, ``Tensor.copy_`` is used.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._launch import _I32_MAX, offset_span


@triton.jit
def _relayout_kernel(src, dst, K, C, L, NLT,
                     ss_b, ss_k, ss_c, ss_l, sd_b, sd_k, sd_c, sd_l,
                     BC: tl.constexpr, BL: tl.constexpr):
    pid = tl.program_id(0)
    bk = pid // NLT
    b = (bk // K).to(tl.int64)
    k = bk % K
    cs = tl.program_id(1) * BC + tl.arange(0, BC)[:, None]
    ls = (pid % NLT) * BL + tl.arange(0, BL)[None, :]
    m = (cs < C) & (ls < L)
    v = tl.load(src + b * ss_b + k * ss_k + cs * ss_c + ls * ss_l, mask=m)
    tl.store(dst + b * sd_b + k * sd_k + cs * sd_c + ls * sd_l, v, mask=m)


def relayout_copy(src: Tensor, dst: Tensor, tile: tuple[int, int, int] | None = None) -> Tensor:
    """Copy ``src`` into ``dst`` (same 3-D/4-D shape, last two axes ``(C, L)``); returns ``dst``.
    Falls back to ``dst.copy_(src)`` where the tiled kernel does not apply. ``tile`` = ``(BC, BL,
    num_warps)`` overrides the tile (benchmarks)."""
    if src.shape != dst.shape or src.dim() not in (3, 4):
        raise ValueError(f"relayout_copy: shapes {tuple(src.shape)} and {tuple(dst.shape)} must match (3-D or 4-D)")
    if src.numel() == 0 or max(offset_span(src, 1), offset_span(dst, 1)) > _I32_MAX:
        return dst.copy_(src)
    if src.dtype != dst.dtype:  # convert with torch's rounding first (rare: the layout copy is the point)
        src = src.to(dst.dtype)
    if src.dim() == 3:
        src, dst4 = src.unsqueeze(1), dst.unsqueeze(1)
    else:
        dst4 = dst
    Bt, K, C, L = src.shape
    # tiles of 8192 elements (H100, bf16: (128, 4·96, 3136) 0.211 ms with 128 x 64, 0.253 with
    # 64 x 64, where the second channel tile is half empty; torch's strided copy: 0.692 ms)
    BC = min(128, triton.next_power_of_2(C))
    BL = min(max(64, 8192 // BC), triton.next_power_of_2(L))
    nw = 8 if BC >= 64 else 4
    if tile is not None:
        BC, BL, nw = tile
    nlt = triton.cdiv(L, BL)
    _relayout_kernel[(Bt * K * nlt, triton.cdiv(C, BC))](
        src, dst4, K, C, L, nlt, *src.stride(), *dst4.stride(), BC=BC, BL=BL, num_warps=nw,
    )
    return dst


def channels_last_copy(t: Tensor) -> Tensor:
    """``t`` ``(Bt, C, L)`` or ``(Bt, K, C, L)`` copied into memory with the ``C`` axis fastest
    (strides of ``t.movedim(-2, -1).contiguous().movedim(-1, -2)``)."""
    out = torch.empty(t.movedim(-2, -1).shape, device=t.device, dtype=t.dtype).movedim(-1, -2)
    return relayout_copy(t, out)

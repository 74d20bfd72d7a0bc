"""Host side of the Triton scan kernels: tile configuration, argument packing, launches, reductions.

Both launchers work on one canonical problem that covers the 1-D selective scan (``K = 1``, no
index) and the fused SS2D core (``K`` directions walking ``idx``):

    u ``(Bt, Dm, L)``; delta ``(Bt, K, Dm, L)``; A ``(K*Dm, N)``; B, C constant ``(K*Dm, N)`` or
    variable ``(Bt, G, N, L)`` with ``G`` a multiple of ``K`` (direction ``k`` owns groups
    ``k*G/K ... (k+1)*G/K - 1``); D, delta_bias ``(K*Dm,)``; z ``(Bt, Dm, L)`` (``K = 1`` only);
    idx ``(K, L)`` int32 or ``None``.

The kernels run on CUDA tensors, and on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``, set before triton is imported), which is how CI checks them.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import triton
from torch import Tensor

from ._bwd import _scan_bwd_kernel
from ._fwd import _scan_fwd_kernel


@dataclass(frozen=True)
class TileConfig:
    """Tile shape: ``T`` steps × ``BD`` channels per program, ``nw`` warps (forward / backward).

    ``T_infer`` is the step tile of a forward that saves no states (inference); a forward that
    feeds the backward uses ``T`` (the backward recomputes from the states saved every ``T``
    steps).
    """

    T: int
    BD_fwd: int
    BD_bwd: int
    nw_fwd: int = 4
    nw_bwd: int = 4
    T_infer: int = 0


@dataclass(frozen=True)
class TileOverride:
    """Tile parameters forced by :func:`config_override` (``None``: the default of
    :func:`_pick_config`). ``ksplit``: run each direction of the fused SS2D core in its own
    programs (the default for ``K > 1``, see :func:`use_ksplit`) or walk all K in one."""

    T: int | None = None
    BD_fwd: int | None = None
    BD_bwd: int | None = None
    nw_fwd: int | None = None
    nw_bwd: int | None = None
    ksplit: bool | None = None


# Process-wide on purpose (not a ContextVar): the autograd engine runs CUDA backwards on its own
# threads, and a backward must see the tiles of its forward.
_FORCED = TileOverride()


@contextlib.contextmanager
def config_override(
    *, T: int | None = None, BD_fwd: int | None = None, BD_bwd: int | None = None, num_warps: int | None = None,
    nw_fwd: int | None = None, nw_bwd: int | None = None, ksplit: bool | None = None,
) -> Iterator[TileOverride]:
    """Force tile parameters inside the block (testing and tuning hook; nests, inner values win).

    The tests need it to cross several tiles and channel blocks at tiny ``L`` under the
    interpreter and to run both variants of the fused core (``ksplit``); ``gpu_scan.py --tune``
    sweeps tiles with it (that sweep chose the defaults). ``num_warps`` sets ``nw_fwd`` and
    ``nw_bwd`` where those are not given. ``BD`` is still reduced to a power of two dividing the
    group size, and the warps to the lanes a tile fills.
    """
    global _FORCED
    if num_warps is not None:
        nw_fwd = num_warps if nw_fwd is None else nw_fwd
        nw_bwd = num_warps if nw_bwd is None else nw_bwd
    given = dict(T=T, BD_fwd=BD_fwd, BD_bwd=BD_bwd, nw_fwd=nw_fwd, nw_bwd=nw_bwd,
                 ksplit=None if ksplit is None else bool(ksplit))
    old = _FORCED
    _FORCED = replace(old, **{k: v for k, v in given.items() if v is not None})
    try:
        yield _FORCED
    finally:
        _FORCED = old


def _pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two that divides ``n`` and is at most ``cap``."""
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def pick_config(N: int, L: int, group_size: int | None) -> TileConfig:
    """Default tiles for a problem (see :func:`_pick_config`), cached per shape and
    :func:`config_override` setting (not for symbolic sizes, as in fake implementations under
    dynamic shapes)."""
    if type(N) is int and type(L) is int and (group_size is None or type(group_size) is int):
        return _pick_config(N, L, group_size, _FORCED)
    return _pick_config.__wrapped__(N, L, group_size, _FORCED)


@functools.lru_cache(maxsize=256)
def _pick_config(N: int, L: int, group_size: int | None, forced: TileOverride) -> TileConfig:
    """Default tiles (from sweeps on an H100, bf16, the benchmark shapes; ``benchmarks/gpu_scan.py``).

    Register tiles are ``[T steps, NP states, BD channels]`` with the channels (then the states) on
    a warp's lanes and the steps in-thread, so a program should cover ``32 * num_warps`` lanes with
    ``BD x NP`` and no more: ``N = 1`` takes 32 channels per one-warp program (``T = 16``; 32 for
    a forward that saves no states); ``N = 16`` takes 16 channels x 2 state lanes (8 states per
    thread, ``T = 8``). ``T`` bounds the registers (arrays of ``T x states/thread``). The same
    defaults won for channel-first (1-D op) and channel-last (fused core) tiles.
    """
    NP = triton.next_power_of_2(N)
    if NP <= 2:
        T, T_inf, bd_f, bd_b, nw_f, nw_b = 16, 32, 32, 32, 1, 1
    else:
        T, T_inf, bd_f, bd_b, nw_f, nw_b = 8, 8, 16, 16, 1, 1
    cap = max(4, triton.next_power_of_2(L))
    T_inf = int(forced.T) if forced.T is not None else min(T_inf, cap)
    T = int(forced.T) if forced.T is not None else min(T, cap)
    bd_f = int(forced.BD_fwd) if forced.BD_fwd is not None else bd_f
    bd_b = int(forced.BD_bwd) if forced.BD_bwd is not None else bd_b
    if group_size is not None:  # a program's channels must share one B/C group
        bd_f = _pow2_divisor(group_size, bd_f)
        bd_b = _pow2_divisor(group_size, bd_b)
    nw_f = int(forced.nw_fwd) if forced.nw_fwd is not None else nw_f
    nw_b = int(forced.nw_bwd) if forced.nw_bwd is not None else nw_b
    # never more warps than lanes the tile fills (extra warps would split the in-thread steps)
    nw_f = max(1, min(nw_f, bd_f * NP // 32))
    nw_b = max(1, min(nw_b, bd_b * NP // 32))
    return TileConfig(T=T, BD_fwd=bd_f, BD_bwd=bd_b, nw_fwd=nw_f, nw_bwd=nw_b, T_infer=T_inf)


def use_ksplit(K: int) -> bool:
    """Run the K directions of the fused SS2D core as separate programs (per-direction output
    slabs summed afterwards in a fixed order) rather than one program walking all K and merging
    in place?

    On by default for ``K > 1``: one direction per program quadruples the programs (a program is
    one warp of 32 channels at ``N = 1``; ``Bt * Dm / 32`` programs leave most of an H100 idle:
    ncu measured 4.6% achieved occupancy and 1.41 ms vs 0.60 ms with the split, at
    ``(128, 4x96, 3136, N=1)``). ``config_override(ksplit=0)`` forces the in-place variant.
    """
    return (True if _FORCED.ksplit is None else _FORCED.ksplit) and K > 1


def _k_strides(t: Tensor) -> tuple[tuple[int, int, int, int], bool]:
    """(batch, direction, channel, step) strides of a merged (3-D) or per-direction (4-D) output."""
    if t.dim() == 4:
        return tuple(t.stride()), True
    return (t.stride(0), 0, t.stride(1), t.stride(2)), False


def check_device(t: Tensor) -> None:
    """Raise unless the kernels can run on ``t``'s device (CUDA, or CPU under the interpreter)."""
    if t.device.type == "cuda":
        return
    if t.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return
    raise RuntimeError(
        f"the triton backend runs on CUDA tensors (or on CPU with TRITON_INTERPRET=1), got {t.device}"
    )


def _bc_layout(M: Tensor, K: int, Dm: int) -> tuple[bool, tuple[int, ...], int, int]:
    """(constant?, (batch, group, state, step) strides, channels per group, groups per direction)."""
    if M.dim() == 2:
        return True, (0, 0, 0, 0), 1, 1
    G = M.shape[1]
    gpd = G // K
    return False, tuple(M.stride()), Dm // gpd, gpd


def _group_size(B: Tensor, C: Tensor, K: int, Dm: int) -> int | None:
    sizes = [Dm // (M.shape[1] // K) for M in (B, C) if M.dim() == 4]
    return math.gcd(*sizes) if sizes else None


_I32_MAX = 2**31 - 1


def offset_span(t: Tensor, first: int) -> int:
    """Largest element offset within ``t`` spanned by its dims from ``first`` on (any strides)."""
    return sum((n - 1) * abs(st) for n, st in zip(t.shape[first:], t.stride()[first:]))


def _check_offsets(*tensors: tuple[Tensor | None, int]) -> None:
    """The kernels index with 32-bit offsets below 64-bit per-(batch, direction/group) bases:
    ``(t, first)`` checks the span of ``t``'s dims from ``first`` on."""
    for t, first in tensors:
        if t is None or t.dim() <= first:
            continue
        span = offset_span(t, first)
        if span > _I32_MAX:
            raise ValueError(
                f"triton backend: one (batch, direction) slice of a {tuple(t.shape)} tensor spans {span} elements, "
                "more than 2**31 - 1; split the channels or use another backend"
            )


def _common(u, delta, A, B, C, z):
    _check_offsets((u, 1), (delta, 2), (B, 2), (C, 2), (z, 1))
    Bt, Dm, L = u.shape
    K = delta.shape[1]
    N = A.shape[1]
    NP = triton.next_power_of_2(N)
    cfg = pick_config(N, L, _group_size(B, C, K, Dm))
    NT = triton.cdiv(L, cfg.T)
    b_const, sB, dgb, gpdb = _bc_layout(B, K, Dm)
    c_const, sC, dgc, gpdc = _bc_layout(C, K, Dm)
    sz = tuple(z.stride()) if z is not None else (0, 0, 0)
    return Bt, Dm, L, K, N, NP, cfg, NT, (b_const, sB, dgb, gpdb), (c_const, sC, dgc, gpdc), sz


def scan_forward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, idx: Tensor | None, save_states: bool, out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Launch the forward kernel on canonical inputs (logical shapes above, any strides).

    ``out`` may be given (any strides and float dtype): ``(Bt, Dm, L)``, e.g. an fp32 buffer that
    the K directions accumulate into in a fixed order, or ``(Bt, K, Dm, L)``, one slab per
    direction, each direction then run by its own programs (the caller sums over K); by default
    it is ``empty_like(u)``.

    Returns:
        ``out`` ``(Bt, Dm, L)`` in ``u``'s dtype, ``last_state`` ``(Bt, K*Dm, N)`` fp32, and the
        tile-end states ``(Bt, K*Dm, NT, NP)`` fp32 for the backward (``None`` unless asked).
    """
    check_device(u)
    Bt, Dm, L, K, N, NP, cfg, NT, (bc, sB, dgb, gpdb), (cc, sC, dgc, gpdc), sz = _common(u, delta, A, B, C, z)
    T = cfg.T
    if not save_states and cfg.T_infer:
        T = cfg.T_infer
        NT = triton.cdiv(L, T)
    out = torch.empty_like(u) if out is None else out
    last = torch.empty(Bt, K * Dm, NP, device=u.device, dtype=torch.float32)
    states = torch.empty(Bt, K * Dm, NT, NP, device=u.device, dtype=torch.float32) if save_states else last
    dummy = last
    so, ksplit = _k_strides(out)
    grid = (Bt, triton.cdiv(Dm, cfg.BD_fwd), K if ksplit else 1)
    _scan_fwd_kernel[grid](
        u, delta, A, B, C, dummy if D is None else D, dummy if z is None else z,
        dummy if delta_bias is None else delta_bias, dummy if idx is None else idx,
        out, states, last,
        L, Dm, NT,
        *u.stride(), *delta.stride(), *sB, *sC, *sz, *so,
        dgb, dgc, gpdb, gpdc,
        N=N, NP=NP, K=K, BD=cfg.BD_fwd, T=T,
        B_CONST=bc, C_CONST=cc, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(softplus), HAS_IDX=idx is not None, SAVE_STATES=save_states, KSPLIT=ksplit,
        num_warps=cfg.nw_fwd,
    )
    return out, last[..., :N], (states if save_states else None)


def scan_backward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, idx: Tensor | None, states: Tensor, dout: Tensor,
    du: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """Launch the backward kernel and reduce the per-block partials (fixed order: deterministic).

    ``dout`` must have ``u``'s strides. ``du`` may be given like ``out`` of :func:`scan_forward`
    (merged ``(Bt, Dm, L)`` or per-direction ``(Bt, K, Dm, L)`` slabs); ``ddelta`` gets
    ``delta``'s strides.

    Returns:
        ``(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias)``; ``dA``/``dD``/``ddelta_bias`` and
        ``dB``/``dC`` in fp32 (the caller casts), ``dD``/``dz``/``ddelta_bias`` ``None`` when absent.
    """
    check_device(u)
    Bt, Dm, L, K, N, NP, cfg, NT, (bc, sB, dgb, gpdb), (cc, sC, dgc, gpdc), sz = _common(u, delta, A, B, C, z)
    assert states.shape[2] == NT, "tile size changed between forward and backward"
    dev, f32 = u.device, torch.float32
    BD = cfg.BD_bwd
    assert dout.stride() == u.stride(), "dout must have the strides of u"
    du = torch.empty_like(u) if du is None else du
    sdu, ksplit = _k_strides(du)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    # every per-(batch, channel) partial (dA, constant dB/dC, dD, ddelta_bias) in one (Bt, SP_B)
    # buffer, reduced over the batch by one sum
    KD = K * Dm
    mat, vec = KD * NP, KD
    parts = [("dA", mat), ("dB", mat if bc else 0), ("dC", mat if cc else 0),
             ("dD", vec if D is not None else 0), ("dbias", vec if delta_bias is not None else 0)]
    span, SP_B = {}, 0  # name -> (offset, length) in a row
    for name, n in parts:
        span[name] = (SP_B, n)
        SP_B += n
    small = torch.empty(Bt, SP_B, device=dev, dtype=f32)
    ptr = {name: small[:, o:] if n else small for name, (o, n) in span.items()}  # absent: any valid pointer
    # variable dB/dC: one partial per channel block, (Bt, G, blocks per group, L, N) with a step's
    # N partials contiguous, viewed as (..., N, L); B and C share one buffer when their shapes agree
    shapes = [(Bt, M.shape[1], triton.cdiv(dg, BD), L, N) for M, dg, const in ((B, dgb, bc), (C, dgc, cc))
              if not const]
    shared = len(shapes) == 2 and shapes[0] == shapes[1]
    if shared:
        both = torch.empty(2, *shapes[0], device=dev, dtype=f32).transpose(-1, -2)
        dBp, dCp = both[0], both[1]
    else:
        dBp = ptr["dB"] if bc else torch.empty(shapes[0], device=dev, dtype=f32).transpose(-1, -2)
        dCp = ptr["dC"] if cc else torch.empty(shapes[-1], device=dev, dtype=f32).transpose(-1, -2)
    pB = (0, 0, 0, 0, 0) if bc else dBp.stride()
    pC = (0, 0, 0, 0, 0) if cc else dCp.stride()
    grid = (Bt, triton.cdiv(Dm, BD), K if ksplit else 1)
    _scan_bwd_kernel[grid](
        u, delta, A, B, C, small if D is None else D, small if z is None else z,
        small if delta_bias is None else delta_bias, small if idx is None else idx, states, dout,
        du, ddelta, small if dz is None else dz, ptr["dA"], ptr["dD"], ptr["dbias"], dBp, dCp,
        L, Dm, NT,
        *u.stride(), *delta.stride(), *sB, *sC, *sz, *dout.stride(), *sdu,
        *pB, *pC,
        dgb, dgc, gpdb, gpdc, SP_B,
        N=N, NP=NP, K=K, BD=BD, T=cfg.T,
        B_CONST=bc, C_CONST=cc, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(softplus), HAS_IDX=idx is not None, KSPLIT=ksplit,
        num_warps=cfg.nw_bwd,
    )
    red = small.sum(0)
    out = {name: red[o:o + n] if n else None for name, (o, n) in span.items()}
    dA = out["dA"].view(KD, NP)[:, :N]
    if shared:
        dB, dC = both.sum(3).unbind(0)
    else:
        dB = out["dB"].view(KD, NP)[:, :N] if bc else dBp.sum(2)
        dC = out["dC"].view(KD, NP)[:, :N] if cc else dCp.sum(2)
    return du, ddelta, dA, dB, dC, out["dD"], dz, out["dbias"]

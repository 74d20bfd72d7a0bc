"""Autograd wrappers of the Triton kernels: the ``triton`` selective-scan backend and fused SS2D core.

:func:`selective_scan_triton` is the backend function (canonical arguments, see
:mod:`vision_ssm.ops.selective_scan`); :func:`ss2d_scan_triton` is the fused implementation of
:func:`vision_ssm.ops.ss2d_scan` registered as the backend's ``ss2d_target``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import DirectionSet
from ..scan.ss2d import check_ss2d_shapes
from ..scan.tracing import under_tracing
from ._launch import scan_backward, scan_forward, use_ksplit
from ._merge import sum_slabs
from ._relayout import channels_last_copy, relayout_copy


def _c(t: Tensor | None) -> Tensor | None:
    """Last-dim-contiguous version of ``t`` (the kernels step along a unit stride)."""
    if t is None or t.stride(-1) == 1:
        return t
    return t.contiguous()


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether the backward can run (then the forward saves its tile-end states)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _cast(g: Tensor | None, like: Tensor | None) -> Tensor | None:
    if g is None or like is None:
        return None
    return g.to(like.dtype)


def scan_kernel_inputs(u, delta, A, B, C, D, z, delta_bias) -> tuple:
    """The canonical inputs (see ``_launch``) in the layout the scan kernels read: ``u``, ``delta``,
    ``A`` contiguous, ``B``/``C``/``z`` with a unit last stride."""
    return u.contiguous(), delta.contiguous(), A.contiguous(), _c(B), _c(C), D, _c(z), delta_bias


def scan_fwd_impl(u, delta, A, B, C, D, z, delta_bias, softplus: bool, idx, need_grad: bool):
    """Forward of the K-direction scan on canonical inputs (see ``_launch``): ``(out, last, states,
    saved)`` where ``saved`` are :func:`scan_kernel_inputs` (what the backward reads)."""
    saved = scan_kernel_inputs(u, delta, A, B, C, D, z, delta_bias)
    out, last, states = scan_forward(*saved, softplus, idx, need_grad)
    return out, last, states, saved


def scan_bwd_impl(u, delta, A, B, C, D, z, delta_bias, softplus: bool, idx, states, dout):
    """Backward of :func:`scan_fwd_impl` on its ``saved`` inputs: the gradients of
    ``(u, delta, A, B, C, D, z, delta_bias)`` in their dtypes (``None`` for absent inputs)."""
    du, ddelta, dA, dB, dC, dD, dz, dbias = scan_backward(
        u, delta, A, B, C, D, z, delta_bias, softplus, idx, states, dout.contiguous()
    )
    return du, ddelta, _cast(dA, A), _cast(dB, B), _cast(dC, C), _cast(dD, D), dz, _cast(dbias, delta_bias)


class _ScanFn(torch.autograd.Function):
    """Selective scan over ``K`` directions (``K = 1``: plain 1-D scan), see ``_launch``."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, idx, need_grad):
        out, last, states, saved = scan_fwd_impl(u, delta, A, B, C, D, z, delta_bias, softplus, idx, need_grad)
        ctx.save_for_backward(*saved, states)
        ctx.softplus, ctx.idx = softplus, idx
        ctx.mark_non_differentiable(last)
        return out, last

    @staticmethod
    def backward(ctx, dout, _dlast):
        *saved, states = ctx.saved_tensors
        grads = scan_bwd_impl(*saved, ctx.softplus, ctx.idx, states, dout)
        return (*grads, None, None, None)


def _channels_last(t: Tensor, dim: int) -> Tensor:
    """``t`` itself if its channel axis ``dim`` already has unit stride (any other strides are fine:
    the kernels take them as arguments), else a copy with the same logical shape whose memory has
    ``dim`` fastest."""
    if t.stride(dim) == 1 or t.shape[dim] == 1:  # a size-1 axis is laid out either way
        return t
    if dim == t.dim() - 2:  # (.., C, L): the tiled copy
        return channels_last_copy(t)
    return t.movedim(dim, -1).contiguous().movedim(-1, dim)


def _slab_dtype(dtype: torch.dtype) -> torch.dtype:
    """Per-direction output slabs: the I/O dtype for fp16/bf16 (what the routed path's per-direction
    outputs hold before the merge), fp32 otherwise."""
    return dtype if dtype in (torch.float16, torch.bfloat16) else torch.float32


def _accumulator(x: Tensor, K: int, ksplit: bool) -> Tensor:
    """Where the fused kernels put ``y`` (or ``dx``) of ``x`` ``(Bt, D, L)``: one slab per direction
    ``(Bt, K, D, L)`` stored ``(Bt, K, L, D)`` in the I/O dtype (``ksplit``), else one fp32 buffer
    ``(Bt, D, L)`` stored ``(Bt, L, D)`` that the K directions accumulate into in place."""
    Bt, Dm, L = x.shape
    if ksplit:
        return torch.empty(Bt, K, L, Dm, device=x.device, dtype=_slab_dtype(x.dtype)).transpose(2, 3)
    return torch.empty(Bt, L, Dm, device=x.device, dtype=torch.float32).transpose(1, 2)


def kernel_layout(x: Tensor, delta: Tensor, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``x``, ``delta``, ``B``, ``C`` in the memory the fused kernels read: channel-last (unit
    channel / state stride; a no-op for tensors already so). Reading channel-first memory
    strided instead was measured slower overall (``benchmarks/experiments/cf_layout.py``)."""
    d_cl = _channels_last(delta, 2)
    return _channels_last(x, 1), d_cl, _channels_last(B, 2), _channels_last(C, 2)


def ss2d_fwd_impl(x, delta, A, B, C, D, delta_bias, softplus: bool, idx, need_grad: bool):
    """Forward of the fused SS2D core: ``(y, states, saved)``; ``y`` ``(Bt, D, L)`` in ``x``'s dtype
    with channel-last strides ``(L*D, 1, D)``, ``saved`` the inputs as the kernels read them."""
    x_cl, d_cl, B_cl, C_cl = kernel_layout(x, delta, B, C)
    A = A.contiguous()
    ksplit = use_ksplit(d_cl.shape[1])
    acc, _, states = scan_forward(x_cl, d_cl, A, B_cl, C_cl, D, None, delta_bias, softplus, idx, need_grad,
                                 _accumulator(x_cl, d_cl.shape[1], ksplit))
    if ksplit:
        acc = sum_slabs(acc, x.dtype)  # fixed-order fp32 reduction over the K direction slabs
    return _as_channels_last(acc, x.dtype), states, (x_cl, d_cl, A, B_cl, C_cl, D, delta_bias)


def _dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill its memory without gaps or overlaps (any dim order)."""
    expected = 1
    dims = sorted(((st, n) for n, st in zip(t.shape, t.stride()) if n != 1))
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def ddelta_stride(delta: Tensor) -> tuple[int, ...]:
    """Strides of ``delta``'s gradient (or of any input's): those of ``torch.empty_like(delta)``,
    i.e. delta's own if it is dense (checked directly: the meta allocation costs host time on
    every call)."""
    if _dense(delta):
        return tuple(delta.stride())
    return torch.empty_like(delta, device="meta").stride()


def ss2d_bwd_impl(x_cl, d_cl, A, B_cl, C_cl, D, delta_bias, softplus: bool, idx, states, dout, d_stride):
    """Backward of :func:`ss2d_fwd_impl` on its ``saved`` inputs: gradients of
    ``(x, delta, A, B, C, D, delta_bias)`` (``None`` for absent inputs); ``dx`` channel-last like
    ``y``, ``ddelta`` with strides ``d_stride`` (:func:`ddelta_stride` of the caller's ``delta``;
    ``None``: the kernel's layout, ``delta``'s as the kernels read it)."""
    ksplit = use_ksplit(d_cl.shape[1])
    dx = _accumulator(x_cl, d_cl.shape[1], ksplit)
    dx, ddelta, dA, dB, dC, dD, _, dbias = scan_backward(
        x_cl, d_cl, A, B_cl, C_cl, D, None, delta_bias, softplus, idx, states, _like(dout, x_cl), dx,
    )
    if ksplit:
        dx = sum_slabs(dx, x_cl.dtype)
    dx = _as_channels_last(dx, x_cl.dtype)
    if d_stride is not None and ddelta.stride() != tuple(d_stride):
        ddelta = relayout_copy(ddelta, torch.empty_strided(ddelta.shape, d_stride, device=ddelta.device,
                                                           dtype=ddelta.dtype))
    return (dx, ddelta, _cast(dA, A), _cast(dB, B_cl), _cast(dC, C_cl), _cast(dD, D), _cast(dbias, delta_bias))


class _SS2DFn(torch.autograd.Function):
    """Fused SS2D core. Works channel-last: every step of every direction then reads one
    contiguous run of channels, whatever the pixel order (column-wise directions stay coalesced).

    By default each direction runs in its own programs (4x the parallelism of one program walking
    the K directions), writing a per-direction slab ``(Bt, K, L, Dm)`` in the I/O dtype (fp32 for
    fp32 inputs) that is summed over K in fp32 afterwards, in a fixed order; ``config_override(
    ksplit=0)`` instead walks the K directions in one program, accumulating in place in fp32. Both
    are deterministic. The output (and ``dx``) keep the channel-last memory: logical ``(Bt, D, L)``
    with strides ``(L*D, 1, D)``, which ``view``s to ``(Bt, D, H, W)`` and permutes to a contiguous
    ``(Bt, H, W, D)`` for free."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, delta_bias, softplus, idx, need_grad):
        y, states, saved = ss2d_fwd_impl(x, delta, A, B, C, D, delta_bias, softplus, idx, need_grad)
        ctx.save_for_backward(*saved, states)
        ctx.softplus, ctx.idx = softplus, idx
        # leaves get gradients in their own layouts (as ``.grad`` would hold them); intermediate
        # tensors (the SS2D layer's projections) get them in the kernels' layout, which every
        # upstream backward reads as it is: no copy
        ctx.d_stride = ddelta_stride(delta) if _is_leaf(delta) else None
        ctx.grad_strides = tuple(ddelta_stride(t) if _is_leaf(t) else None for t in (x, B, C))
        return y

    @staticmethod
    def backward(ctx, dout):
        *saved, states = ctx.saved_tensors
        dx, ddelta, dA, dB, dC, dD, dbias = ss2d_bwd_impl(*saved, ctx.softplus, ctx.idx, states, dout, ctx.d_stride)
        # leaves' gradients in their layouts (as empty_like), by the tiled copy: what autograd would
        # otherwise do with PyTorch's strided copy (eager only; the custom ops keep the kernel
        # layouts their fake implementations declare)
        dx, dB, dC = (_restride(g, st) for g, st in zip((dx, dB, dC), ctx.grad_strides))
        return (dx, ddelta, dA, dB, dC, dD, dbias, None, None, None)


def _is_leaf(t: Tensor) -> bool:
    """Whether autograd would store ``t``'s gradient in ``.grad`` (a leaf that requires grad)."""
    return t.requires_grad and t.grad_fn is None


def _restride(g: Tensor | None, stride: tuple[int, ...] | None) -> Tensor | None:
    """``g`` with ``stride`` (one tiled copy if it differs; ``None``: ``g`` as it is)."""
    if g is None or stride is None or g.stride() == tuple(stride):
        return g
    return relayout_copy(g, torch.empty_strided(g.shape, stride, device=g.device, dtype=g.dtype))


def _like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` in ``ref``'s dtype and strides (the backward kernel reads ``dout`` with ``x``'s)."""
    if t.stride() == ref.stride() and t.dtype == ref.dtype:
        return t
    out = torch.empty_strided(ref.shape, ref.stride(), device=ref.device, dtype=ref.dtype)
    return relayout_copy(t, out)


def _as_channels_last(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` ``(Bt, D, L)`` in ``dtype`` with strides ``(L*D, 1, D)`` (one copy at most)."""
    if t.stride(1) == 1 and t.stride(2) == t.shape[1] and t.dtype == dtype:
        return t
    out = torch.empty(t.shape[0], t.shape[2], t.shape[1], device=t.device, dtype=dtype).transpose(1, 2)
    out.copy_(t)
    return out


def selective_scan_triton(
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
) -> Tensor | tuple[Tensor, Tensor]:
    """Triton selective scan (mamba-ssm semantics; canonical arguments).

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.ScanFn`.
    """
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    need = _needs_grad(u, delta, A, B, C, D, z, delta_bias)
    if under_tracing(u):  # the opaque custom op (see custom_ops); same kernels
        out, last, _ = torch.ops.vision_ssm.scan_fwd(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), need)
    else:
        out, last = _ScanFn.apply(u, delta.unsqueeze(1), A, B, C, D, z, delta_bias, bool(delta_softplus), None, need)
    return (out, last) if return_last_state else out


def ss2d_scan_triton(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    dirs: DirectionSet,
    delta_softplus: bool = True,
) -> Tensor:
    """Fused SS2D core: route → K-direction scan → merge in one kernel (forward and backward).

    Same contract as :func:`vision_ssm.ops.ss2d_scan`: every tensor is in the pixel domain; each
    program reads ``x``/``delta``/``B``/``C`` at the pixels its direction visits
    (``dirs.index``) and adds its output to the merged output at those pixels, so the K routed
    copies are never materialised. Inputs are brought to channel-last memory first (a no-op if
    they already are), so that every direction's steps read contiguous channel runs.

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.SS2DScanFn`.
    """
    check_ss2d_shapes(x, delta, A, B, C, dirs)
    need = _needs_grad(x, delta, A, B, C, D, delta_bias)
    if under_tracing(x):  # the opaque custom op (see custom_ops); same kernels
        idx = dirs.index.to(device=x.device, dtype=torch.int32)
        return torch.ops.vision_ssm.ss2d_fwd(x, delta, A, B, C, D, delta_bias, idx, bool(delta_softplus), need)[0]
    return _SS2DFn.apply(x, delta, A, B, C, D, delta_bias, bool(delta_softplus), dirs.index_as(x.device), need)

"""The Triton backend as ``torch.library`` custom ops, for ``torch.compile`` and ``torch.export``.

Dynamo cannot trace the autograd Functions of :mod:`.functions` (their kernels are launched by
Python-side code: tile choice, stride packing, offset checks), so under compilation the backend
calls these ops instead. Each is opaque to the compiler, has a fake (meta) implementation giving
exactly the shapes, dtypes and strides of the real one, and a registered autograd formula whose
backward is another opaque op; the surrounding PyTorch code (projections, norms, activations) is
then compiled and fused around them without graph breaks (``fullgraph=True`` works).

Eager calls keep using the autograd Functions directly (fewer Python layers per launch); both
paths run the same :func:`~.functions.scan_fwd_impl` / :func:`~.functions.ss2d_fwd_impl` code.

Ops (namespace ``vision_ssm``):

- ``scan_fwd(u, delta, A, B, C, D?, z?, delta_bias?, softplus, need_grad) -> (out, last, states)``
- ``scan_bwd(u, delta, A, B, C, D?, z?, delta_bias?, states, dout, softplus) -> 8 gradients``
- ``ss2d_fwd(x, delta, A, B, C, D?, delta_bias?, idx, softplus, need_grad) -> (y, states)``
- ``ss2d_bwd(x, delta, A, B, C, D?, delta_bias?, idx, states, dy, softplus) -> 7 gradients``

``states`` (the tile-end states the backward restarts from) is a 0-element tensor when
``need_grad`` is false; gradients of absent optional inputs are 0-element tensors too (the
autograd formula turns them into ``None``).
"""
from __future__ import annotations

import torch
import triton
from torch import Tensor

from ._launch import _group_size, pick_config
from .scan import (
    ddelta_stride,
    kernel_layout,
    scan_bwd_impl,
    scan_fwd_impl,
    scan_kernel_inputs,
    ss2d_bwd_impl,
    ss2d_fwd_impl,
)

_F32 = torch.float32


def _none_to_empty(ts: tuple[Tensor | None, ...], like: Tensor) -> tuple[Tensor, ...]:
    return tuple(like.new_empty(0) if t is None else t for t in ts)


def _distinct(grads) -> list[Tensor | None]:
    """``grads`` contiguous, none sharing memory with another: the launcher returns some gradients
    as views of one reduction buffer, and a custom op's outputs may not alias each other (checked by
    storage, which also holds under dispatch modes where views lose ``_base``)."""
    seen, out = set(), []
    for g in grads:
        if g is not None:
            key = g.untyped_storage()._cdata
            g = g.clone(memory_format=torch.contiguous_format) if key in seen else g.contiguous()
            seen.add(g.untyped_storage()._cdata)
        out.append(g)
    return out


def _states_shape(u: Tensor, K: int, A: Tensor, B: Tensor, C: Tensor) -> tuple[int, int, int, int]:
    """Shape of the saved tile-end states, as :func:`~._launch.scan_forward` allocates them."""
    Bt, Dm, L = u.shape
    N = A.shape[1]
    cfg = pick_config(N, L, _group_size(B, C, K, Dm))
    return (Bt, K * Dm, triton.cdiv(L, cfg.T), triton.next_power_of_2(N))


def _bc4(M: Tensor) -> Tensor:
    """Variable B/C as ``(Bt, G, N, L)`` (constant ``(D, N)`` stays 2-D)."""
    return M.unsqueeze(1) if M.dim() == 3 else M


# ------------------------------------------------------------------------------- 1-D selective scan
@torch.library.custom_op("vision_ssm::scan_fwd", mutates_args=())
def scan_fwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, need_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Triton selective-scan forward (canonical arguments): ``out`` ``(Bt, D, L)`` in ``u``'s dtype,
    ``last`` ``(Bt, D, N)`` fp32, ``states`` ``(Bt, D, L/T, NP)`` fp32 (0 elements unless ``need_grad``)."""
    out, last, states, _ = scan_fwd_impl(
        u, delta.unsqueeze(1), A, _bc4(B), _bc4(C), D, z, delta_bias, softplus, None, need_grad
    )
    return out, last.contiguous(), u.new_empty(0, dtype=_F32) if states is None else states


@scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, softplus, need_grad):
    Bt, Dm, L = u.shape
    N = A.shape[1]
    shape = _states_shape(u, 1, A, _bc4(B), _bc4(C)) if need_grad else (0,)
    states = u.new_empty(shape, dtype=_F32)
    return u.new_empty(Bt, Dm, L), u.new_empty(Bt, Dm, N, dtype=_F32), states


@torch.library.custom_op("vision_ssm::scan_bwd", mutates_args=())
def scan_bwd(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, states: Tensor, dout: Tensor, softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``(u, delta, A, B, C, D, z, delta_bias)`` for :func:`scan_fwd` (contiguous, in
    the inputs' dtypes; 0-element tensors for absent optional inputs)."""
    saved = scan_kernel_inputs(u, delta.unsqueeze(1), A, _bc4(B), _bc4(C), D, z, delta_bias)
    grads = scan_bwd_impl(*saved, softplus, None, states, dout)
    du, ddelta, dA, dB, dC, dD, dz, dbias = _distinct(grads)
    dB = dB.view(B.shape)
    dC = dC.view(C.shape)
    return _none_to_empty((du, ddelta.view(delta.shape), dA, dB, dC, dD, dz, dbias), u)


@scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, states, dout, softplus):
    opt = lambda t: u.new_empty(0) if t is None else t.new_empty(t.shape)  # noqa: E731  (no shared outputs)
    return (u.new_empty(u.shape), delta.new_empty(delta.shape), A.new_empty(A.shape), B.new_empty(B.shape),
            C.new_empty(C.shape), opt(D), opt(z), opt(delta_bias))


def _scan_setup(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, softplus, _ = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[2])
    ctx.softplus = softplus
    ctx.absent = tuple(t is None for t in (D, z, delta_bias))


def _scan_backward(ctx, dout, _dlast, _dstates):
    u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
    grads = list(scan_bwd(u, delta, A, B, C, D, z, delta_bias, states, dout, ctx.softplus))
    for i, absent in zip((5, 6, 7), ctx.absent):
        if absent:
            grads[i] = None
    return (*grads, None, None)


scan_fwd.register_autograd(_scan_backward, setup_context=_scan_setup)


# ------------------------------------------------------------------------------- fused SS2D core
@torch.library.custom_op("vision_ssm::ss2d_fwd", mutates_args=())
def ss2d_fwd(
    x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, delta_bias: Tensor | None,
    idx: Tensor, softplus: bool, need_grad: bool,
) -> tuple[Tensor, Tensor]:
    """Fused SS2D core forward: ``y`` ``(Bt, D, L)`` in ``x``'s dtype with channel-last strides
    ``(L*D, 1, D)``, and ``states`` (0 elements unless ``need_grad``)."""
    y, states, _ = ss2d_fwd_impl(x, delta, A, B, C, D, delta_bias, softplus, idx, need_grad)
    return y, x.new_empty(0, dtype=_F32) if states is None else states


@ss2d_fwd.register_fake
def _(x, delta, A, B, C, D, delta_bias, idx, softplus, need_grad):
    Bt, Dm, L = x.shape
    y = x.new_empty(Bt, L, Dm).transpose(1, 2)
    shape = _states_shape(x, delta.shape[1], A, B, C) if need_grad else (0,)
    states = x.new_empty(shape, dtype=_F32)
    return y, states


@torch.library.custom_op("vision_ssm::ss2d_bwd", mutates_args=())
def ss2d_bwd(
    x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, delta_bias: Tensor | None,
    idx: Tensor, states: Tensor, dy: Tensor, softplus: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``(x, delta, A, B, C, D, delta_bias)`` for :func:`ss2d_fwd`: ``dx`` channel-last
    like ``y``, ``ddelta`` laid out like ``torch.empty_like(delta)``, the rest contiguous."""
    x_k, d_k, B_k, C_k = kernel_layout(x, delta, B, C)
    saved = (x_k, d_k, A.contiguous(), B_k, C_k, D, delta_bias)
    dx, ddelta, dA, dB, dC, dD, dbias = ss2d_bwd_impl(
        *saved, softplus, idx, states, dy, ddelta_stride(delta)
    )
    rest = _distinct((dA, dB, dC, dD, dbias))
    return _none_to_empty((dx, ddelta, *rest), x)


@ss2d_bwd.register_fake
def _(x, delta, A, B, C, D, delta_bias, idx, states, dy, softplus):
    Bt, Dm, L = x.shape
    opt = lambda t: x.new_empty(0) if t is None else t.new_empty(t.shape)  # noqa: E731  (no shared outputs)
    return (x.new_empty(Bt, L, Dm).transpose(1, 2), torch.empty_like(delta), A.new_empty(A.shape),
            B.new_empty(B.shape), C.new_empty(C.shape), opt(D), opt(delta_bias))


def _ss2d_setup(ctx, inputs, output):
    x, delta, A, B, C, D, delta_bias, idx, softplus, _ = inputs
    ctx.save_for_backward(x, delta, A, B, C, D, delta_bias, idx, output[1])
    ctx.softplus = softplus
    ctx.absent = (D is None, delta_bias is None)


def _ss2d_backward(ctx, dy, _dstates):
    x, delta, A, B, C, D, delta_bias, idx, states = ctx.saved_tensors
    grads = list(ss2d_bwd(x, delta, A, B, C, D, delta_bias, idx, states, dy, ctx.softplus))
    for i, absent in zip((5, 6), ctx.absent):
        if absent:
            grads[i] = None
    return (*grads, None, None, None)


ss2d_fwd.register_autograd(_ss2d_backward, setup_context=_ss2d_setup)

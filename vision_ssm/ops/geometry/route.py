"""Route a 2-D map into K scan sequences and merge K sequences back onto the grid (an adjoint pair).

``route`` is VMamba's *cross-scan* and MambaAD's multi-direction ``encode``; ``merge`` is the
*cross-merge* (sum over directions of the un-scanned sequences). Both are index gathers / scatters
driven by a cached :class:`~vision_ssm.ops.DirectionSet`; there is no Python loop over positions.

Autograd: the backward of :func:`route` is :func:`merge` and the backward of :func:`merge` is
:func:`route` (they are adjoint: ``<route(x), y> == <x, merge(y)>``), so gradients cost the same as
the forward passes and are deterministic. Both are twice differentiable.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from .directions import DirectionSet

__all__ = ["gather_directions", "merge", "recording_for_export", "route", "scatter_directions"]


def recording_for_export() -> bool:
    """True while ``torch.export`` (hence ``torch.onnx.export(..., dynamo=True)``) or ``torch.jit.trace``
    records the code, as opposed to eager runs and ``torch.compile``.

    Ops that scatter with expanded index tensors (route/merge here) or write into preallocated
    buffers (the ``chunked`` core) in eager mode then record a functional *export form*: plain
    operators that autograd can differentiate in the exported program and that exporters do not fold
    into constants as large as the activations. ``torch.compile`` keeps the eager forms.
    """
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def _flat_index(dirs: DirectionSet, which: str) -> Tensor:
    """``(K*L,)`` int64 index into a flattened ``(K*L)`` axis: ``k*L + dirs.<which>[k, t]`` (cached per set).

    Built once, outside any tracing mode, so an exporter records one small constant per direction set.
    """
    if torch.compiler.is_dynamo_compiling():  # strict export: Dynamo traces the arithmetic on the constants
        idx = getattr(dirs, which)
        return (idx + torch.arange(dirs.K, device=idx.device)[:, None] * dirs.L).reshape(-1)
    key = ("flat", which)
    t = dirs._as.get(key)
    if t is None:
        with torch.inference_mode(False), _disable_current_modes():
            idx = getattr(dirs, which)
            t = (idx + torch.arange(dirs.K, device=idx.device)[:, None] * dirs.L).reshape(-1).contiguous()
        dirs._as[key] = t
    return t


def _gather_flat(t: Tensor, dirs: DirectionSet, which: str) -> Tensor:
    """Export form of a per-direction gather along ``L``: ``out[b, k, c, s] = t[b, k, c, dirs.<which>[k, s]]``.

    ``t`` is ``(B, K, C, L)``; one ``index_select`` over the flattened ``(K*L)`` axis with a ``(K*L,)``
    index, where ``torch.gather`` would need a ``(B, K, C, L)`` index that exporters fold into a
    constant as large as the activations. A ``t`` broadcast over ``K`` (stride 0) is read once.
    """
    B, K, C, L = t.shape
    if t.stride(1) == 0:
        out = t[:, 0].index_select(2, getattr(dirs, which).reshape(-1))
    else:
        out = t.transpose(1, 2).reshape(B, C, K * L).index_select(2, _flat_index(dirs, which))
    return out.view(B, C, K, L).transpose(1, 2)


def _route_impl(x: Tensor, dirs: DirectionSet, channels_last: bool) -> Tensor:
    K, L = dirs.K, dirs.L
    idx = dirs.index
    if channels_last:  # one transposing copy of the map is cheaper than transposing the K routed copies
        x = x.permute(0, 3, 1, 2)
    B, D = x.shape[0], x.shape[1]
    if recording_for_export():
        return _gather_flat(x.reshape(B, 1, D, L).expand(B, K, D, L), dirs, "index").contiguous()
    flat = x.reshape(B, 1, D, L).expand(B, K, D, L)
    return flat.gather(3, idx[None, :, None, :].expand(B, K, D, L))


def _merge_impl(y: Tensor, dirs: DirectionSet, channels_last: bool, scatter: bool | None = None) -> Tensor:
    B, K, D, L = y.shape
    if recording_for_export():  # gathers (no scatter, no expanded index constants)
        out = _gather_flat(y, dirs, "inverse").sum(1)
        out = out.view(B, D, dirs.H, dirs.W)
        return out.permute(0, 2, 3, 1).contiguous() if channels_last else out
    if scatter is None:  # CPU: index_add_ is fastest; elsewhere gathers avoid atomics (deterministic mode)
        scatter = y.device.type == "cpu"
    if scatter:
        # out[..., index[k, t]] += y[:, k, ..., t]; each call adds a permutation, so no collisions.
        idx = dirs.index
        out = y.new_zeros(B, D, L)
        for k in range(K):
            out.index_add_(2, idx[k], y[:, k])
    else:
        # out[..., p] = sum_k y[:, k, ..., inverse[k, p]], accumulated in direction order.
        inv = dirs.inverse
        out = y[:, 0].gather(2, inv[0].expand(B, D, L))
        for k in range(1, K):
            out = out + y[:, k].gather(2, inv[k].expand(B, D, L))
    out = out.view(B, D, dirs.H, dirs.W)
    return out.permute(0, 2, 3, 1).contiguous() if channels_last else out


class _Route(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dirs: DirectionSet, channels_last: bool) -> Tensor:
        ctx.dirs, ctx.channels_last = dirs, channels_last
        return _route_impl(x, dirs, channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Merge.apply(grad, ctx.dirs, ctx.channels_last), None, None


class _Merge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, dirs: DirectionSet, channels_last: bool) -> Tensor:
        ctx.dirs, ctx.channels_last = dirs, channels_last
        return _merge_impl(y, dirs, channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Route.apply(grad, ctx.dirs, ctx.channels_last), None, None


def _check_dirs(dirs: object) -> None:
    if not isinstance(dirs, DirectionSet):
        raise TypeError(f"dirs must be a DirectionSet, got {type(dirs).__name__}; see vision_ssm.ops.get_directions")


def _on_device(dirs: DirectionSet, device: torch.device) -> DirectionSet:
    return dirs if dirs.index.device == device else dirs.to(device)


def route(x: Tensor, dirs: DirectionSet, channels_last: bool = False) -> Tensor:
    """Read a map along each of the K directions (cross-scan).

    Args:
        x: ``(B, D, H, W)`` map, or ``(B, H, W, D)`` if ``channels_last``. Any dtype.
        dirs: Direction set over the same H×W (moved to ``x.device`` through the cache if needed).
        channels_last: Layout of ``x``.

    Returns:
        ``(B, K, D, L)`` contiguous, ``out[b, k, :, t] = x[b, :, p]`` with ``p = dirs.index[k, t]``
        (raster position ``p = h*W + w``).

    Raises:
        ValueError: the spatial size of ``x`` differs from the direction set's.

    Example:
        >>> import torch
        >>> from vision_ssm.ops import get_directions, merge, route
        >>> dirs = get_directions("hilbert", 5, 7, 4)        # K = 4 directions over a 5×7 map
        >>> x = torch.randn(2, 3, 5, 7)                        # (B, D, H, W)
        >>> xs = route(x, dirs)                                # (B, K, D, L), L = H·W
        >>> tuple(xs.shape)
        (2, 4, 3, 35)
        >>> torch.allclose(merge(xs, dirs), 4 * x)             # merge is route's adjoint: K·x
        True
    """
    _check_dirs(dirs)
    if x.dim() != 4:
        raise ValueError(f"route: x must be 4-D, got shape {tuple(x.shape)}")
    hw = tuple(x.shape[1:3]) if channels_last else tuple(x.shape[2:4])
    if hw != (dirs.H, dirs.W):
        layout = "(B, H, W, D)" if channels_last else "(B, D, H, W)"
        raise ValueError(f"route: x {layout} has H, W = {hw}, the direction set {dirs.name!r} is {dirs.H}x{dirs.W}")
    dirs = _on_device(dirs, x.device)
    if recording_for_export():  # plain differentiable ops (jit.trace cannot record a Function with a DirectionSet)
        return _route_impl(x, dirs, bool(channels_last))
    return _Route.apply(x, dirs, bool(channels_last))


def merge(y: Tensor, dirs: DirectionSet, channels_last: bool = False) -> Tensor:
    """Put each direction's sequence back onto the grid and sum over directions (cross-merge).

    This is the adjoint of :func:`route`: ``merge(y)[b, :, p] = Σ_k y[b, k, :, dirs.inverse[k, p]]``.
    ``merge(route(x)) == K * x``.

    Args:
        y: ``(B, K, D, L)`` sequences in scan order.
        dirs: The direction set used to route.
        channels_last: Layout of the result.

    Returns:
        ``(B, D, H, W)``, or ``(B, H, W, D)`` contiguous if ``channels_last``; dtype of ``y``.

    Raises:
        ValueError: ``y`` does not have ``K`` directions of length ``L``.
    """
    _check_dirs(dirs)
    if y.dim() != 4 or y.shape[1] != dirs.K or y.shape[3] != dirs.L:
        raise ValueError(
            f"merge: y must be (B, K={dirs.K}, D, L={dirs.L}) for {dirs.name!r}, got {tuple(y.shape)}"
        )
    dirs = _on_device(dirs, y.device)
    if recording_for_export():
        return _merge_impl(y, dirs, bool(channels_last))
    return _Merge.apply(y, dirs, bool(channels_last))


def gather_directions(t: Tensor, dirs: DirectionSet) -> Tensor:
    """Put per-direction pixel-domain tensors into scan order (``route`` with one map per direction).

    Args:
        t: ``(B, K, C, L)`` where slice ``k`` is in raster (pixel) order.
        dirs: Direction set with the same K and L.

    Returns:
        ``(B, K, C, L)`` with ``out[b, k, :, s] = t[b, k, :, dirs.index[k, s]]``.
    """
    _check_dirs(dirs)
    B, K, C, L = t.shape
    if K != dirs.K or L != dirs.L:
        raise ValueError(f"gather_directions: t must be (B, {dirs.K}, C, {dirs.L}), got {tuple(t.shape)}")
    dirs = _on_device(dirs, t.device)
    if recording_for_export():
        return _gather_flat(t, dirs, "index")
    return t.gather(3, dirs.index[None, :, None, :].expand(B, K, C, L))


def scatter_directions(t: Tensor, dirs: DirectionSet) -> Tensor:
    """Inverse of :func:`gather_directions`: per-direction scan-order tensors back to raster order.

    Args:
        t: ``(B, K, C, L)`` where slice ``k`` is in direction ``k``'s scan order.
        dirs: Direction set with the same K and L.

    Returns:
        ``(B, K, C, L)`` with ``out[b, k, :, p] = t[b, k, :, dirs.inverse[k, p]]`` (no sum over K).
    """
    _check_dirs(dirs)
    B, K, C, L = t.shape
    if K != dirs.K or L != dirs.L:
        raise ValueError(f"scatter_directions: t must be (B, {dirs.K}, C, {dirs.L}), got {tuple(t.shape)}")
    dirs = _on_device(dirs, t.device)
    if recording_for_export():
        return _gather_flat(t, dirs, "inverse")
    return t.gather(3, dirs.inverse[None, :, None, :].expand(B, K, C, L))

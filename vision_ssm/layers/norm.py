"""Norm layers given as a string or a class: one resolver for every block family.

A block's ``norm_layer`` is either

- one of VMamba's names, which also fix the layout: ``"ln"`` (``nn.LayerNorm`` over the last dim of
  ``(B, H, W, C)``), ``"ln2d"`` (``LayerNorm2d`` over the channels of ``(B, C, H, W)``), ``"bn"``
  (``BatchNorm2d``, NCHW); LayerNorm eps is 1e-5 as upstream;
- any other name known to timm's :func:`timm.layers.get_norm_layer` (``"layernorm"``,
  ``"layernorm2d"``, ``"batchnorm2d"``, ``"rmsnorm"``, ...), built with timm's defaults;
- a class or callable ``f(C, **factory_kwargs) -> nn.Module`` (e.g. ``nn.LayerNorm`` or
  ``functools.partial(LayerNorm2d, eps=1e-5)``).

``"ln"`` and ``nn.LayerNorm`` build the same module, as do ``"bn"`` and ``nn.BatchNorm2d``;
``"ln2d"`` equals ``partial(LayerNorm2d, eps=1e-5)`` (timm's ``LayerNorm2d`` defaults to eps 1e-6).
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from timm.layers import LayerNorm2d, get_norm_layer
from torch import nn

__all__ = ["NormLayer", "get_norm", "norm_is_channels_first"]

NormLayer = str | Callable[..., nn.Module]

_VMAMBA_NORMS: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "ln": (functools.partial(nn.LayerNorm, eps=1e-5), False),
    "ln2d": (functools.partial(LayerNorm2d, eps=1e-5), True),
    "bn": (nn.BatchNorm2d, True),
}
# norms over dim 1 of an NCHW map (a class given for a block whose layout is not stated picks NCHW)
_CHANNELS_FIRST_TYPES = (
    LayerNorm2d, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
)


def norm_is_channels_first(norm_layer: NormLayer) -> bool:
    """Whether ``norm_layer`` normalises dim 1 of an NCHW map (``"ln2d"``, ``"bn"``, ``BatchNorm2d``, ...)."""
    if isinstance(norm_layer, str):
        name = norm_layer.lower()
        if name in _VMAMBA_NORMS:
            return _VMAMBA_NORMS[name][1]
        norm_layer = get_norm_layer(norm_layer)
    base = norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer
    return isinstance(base, type) and issubclass(base, _CHANNELS_FIRST_TYPES)


def get_norm(norm_layer: NormLayer, channels_first: bool | None = None) -> tuple[Callable[..., nn.Module], bool]:
    """Resolve a block's ``norm_layer`` into ``(factory(C, **factory_kwargs) -> nn.Module, channels_first)``.

    Args:
        norm_layer: A name or a class/callable (see the module docstring).
        channels_first: The block's layout (``True``: NCHW, ``False``: NHWC); ``None`` takes the norm's own
            (:func:`norm_is_channels_first`).

    Raises:
        ValueError: A VMamba name whose layout contradicts ``channels_first``, or an unknown name.
    """
    if not isinstance(norm_layer, str) and not callable(norm_layer):
        raise TypeError(f"norm_layer must be a string or a callable, got {type(norm_layer).__name__}")
    if isinstance(norm_layer, str):
        name = norm_layer.lower()
        if name in _VMAMBA_NORMS:
            own = _VMAMBA_NORMS[name][1]
            if channels_first is not None and channels_first != own:
                raise ValueError(f"norm_layer={norm_layer!r} is {'NCHW' if own else 'NHWC'}; "
                                 f"it cannot be used with channels_first={channels_first}")
            return _VMAMBA_NORMS[name][0], own
        try:
            factory = get_norm_layer(norm_layer)
        except KeyError:
            raise ValueError(f"unknown norm_layer {norm_layer!r} (VMamba: 'ln', 'ln2d', 'bn'; or a timm name "
                             f"such as 'layernorm', 'layernorm2d', 'batchnorm2d')") from None
        return factory, norm_is_channels_first(norm_layer) if channels_first is None else channels_first
    own = norm_is_channels_first(norm_layer)
    return norm_layer, own if channels_first is None else channels_first

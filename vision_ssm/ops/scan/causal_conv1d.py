"""Causal depthwise 1-D convolution with the causal-conv1d package's signature.

``causal_conv1d(x, weight, bias=None, activation=None)`` is the short-convolution step of Mamba-style
sequence layers: every channel ``d`` is convolved with its own ``W``-tap filter, and output ``l`` only
sees inputs ``l-W+1 .. l`` (zero history before the first step):

``out[b, d, l] = act(bias[d] + Σ_{k=0}^{W-1} weight[d, k] · x[b, d, l - (W-1) + k])``.

On CUDA, with the ``causal_conv1d`` package installed (the ``[cuda]`` extra; widths 2..4, fp32/fp16/
bf16), its kernel runs; everywhere else (CPU, other widths, no package, ``torch.compile`` / export
tracing) one grouped :func:`torch.nn.functional.conv1d` with ``W-1`` left padding, which gives the same
values. The package is imported the first time a CUDA tensor arrives, never at ``import vision_ssm``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .tracing import under_tracing

__all__ = ["causal_conv1d", "causal_conv1d_kernel_available", "causal_conv1d_torch"]

_ACTIVATIONS = (None, "silu", "swish")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_kernel: list[Callable | None] = []  # [] = not probed yet; [None] = unavailable; [fn] = causal_conv1d_fn


def _load_kernel() -> Callable | None:
    """``causal_conv1d.causal_conv1d_fn`` if the package (and its compiled extension) imports, else ``None``."""
    if not _kernel:
        try:
            from causal_conv1d import causal_conv1d_fn
        except Exception:  # noqa: BLE001  (ImportError, or an ABI mismatch of the compiled extension)
            causal_conv1d_fn = None
        _kernel.append(causal_conv1d_fn)
    return _kernel[0]


def causal_conv1d_kernel_available() -> bool:
    """Whether the causal-conv1d package's CUDA kernel can be used (imports the package on first call)."""
    return torch.cuda.is_available() and _load_kernel() is not None


def _check(x: Tensor, weight: Tensor, bias: Tensor | None, activation: str | None) -> None:
    if activation not in _ACTIVATIONS:
        raise NotImplementedError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    if x.dim() != 3:
        raise ValueError(f"causal_conv1d: x must be (B, D, L), got shape {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"causal_conv1d: weight must be (D, W) with D={x.shape[1]}, got {tuple(weight.shape)}")
    if weight.shape[1] < 1:
        raise ValueError("causal_conv1d: the filter width W must be at least 1")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"causal_conv1d: bias must be (D,) with D={x.shape[1]}, got {tuple(bias.shape)}")


def causal_conv1d_torch(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """The PyTorch path of :func:`causal_conv1d` (no argument checks): one grouped ``conv1d``.

    Args:
        x: ``(B, D, L)``.
        weight: ``(D, W)``.
        bias: Optional ``(D,)``.
        activation: ``None``, ``"silu"`` or ``"swish"`` (the same function).

    Returns:
        ``(B, D, L)`` in ``x``'s dtype.
    """
    width = weight.shape[1]
    out = F.conv1d(F.pad(x, (width - 1, 0)), weight.unsqueeze(1).to(x.dtype),
                   None if bias is None else bias.to(x.dtype), groups=x.shape[1])
    return out if activation is None else F.silu(out)


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """Causal depthwise convolution over the last axis (causal-conv1d's ``causal_conv1d_fn`` signature).

    ``out[b, d, l] = act(bias[d] + Σ_k weight[d, k] · x[b, d, l - W + 1 + k])`` with zeros before
    ``l = 0``. An ``nn.Conv1d(D, D, W, groups=D, padding=W-1)`` layer computes the same values on its
    first ``L`` outputs with ``weight = conv.weight[:, 0]``.

    Args:
        x: Sequences ``(B, D, L)`` (channels first; any strides).
        weight: Depthwise filters ``(D, W)``; tap ``W-1`` multiplies the current step.
        bias: Optional ``(D,)``.
        activation: ``None``, ``"silu"`` or ``"swish"``.

    Returns:
        ``(B, D, L)`` in ``x``'s dtype. Differentiable in ``x``, ``weight`` and ``bias``.

    Raises:
        ValueError: Bad shapes.
        NotImplementedError: Unknown activation.
    """
    _check(x, weight, bias, activation)
    if (x.is_cuda and 2 <= weight.shape[1] <= 4 and x.dtype in _KERNEL_DTYPES and weight.dtype in _KERNEL_DTYPES
            and not under_tracing(x)):
        fn = _load_kernel()
        if fn is not None:
            return fn(x, weight, bias, activation=activation)
    return causal_conv1d_torch(x, weight, bias, activation)

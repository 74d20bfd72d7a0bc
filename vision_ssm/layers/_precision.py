"""float16's range in the selective-scan blocks: what runs in fp32 when the activations are float16.

A selective scan's output is a sum of products ``C·exp(ΔA)·Δ·B·u`` over the sequence; its magnitude is
not bounded by that of its inputs (trained at large learning rates, small models reach 10⁵ and more,
where float16 stops at 65504). The scan's math is fp32 in every backend, but its output has the
input's dtype; a float16 output then holds ``inf``, and the next LayerNorm or linear layer turns it
into NaN (``docs/backends.md``, "Mixed precision"). bfloat16 has fp32's range and is left as it is.

So when a block's scan inputs are float16, the block hands the scan fp32 inputs (every backend then
returns fp32, the fused SS2D kernels included) and runs the op that consumes the scan output in fp32
too: SS2D's ``out_norm`` (whose output is bounded again), the Mamba mixers' ``out_proj``. Under
``torch.autocast`` a mixer without a norm after the scan returns that fp32 output (its values may not
fit float16); the residual add then keeps the stream in fp32 (mamba-ssm's ``residual_in_fp32``). fp32
and bfloat16 inputs take none of these paths.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._fx import is_fx_tracing
from ._validate import _autocast_on

__all__ = ["autocast_on", "fp32_scan_inputs", "project_fp32", "run_fp32", "scan_in_fp32"]


def autocast_on(x: Tensor) -> bool:
    """Whether ``torch.autocast`` is enabled for ``x``'s device type."""
    return _autocast_on(x.device.type)


def scan_in_fp32(*tensors: Tensor | None) -> bool:
    """Whether a scan on these inputs must run on fp32 copies: any of them is float16 (whose range the
    scan's output can exceed). Always ``False`` under FX symbolic tracing, whose proxies carry no dtype
    (the traced graph is the fp32 / bfloat16 one)."""
    if is_fx_tracing():
        return False
    return any(t is not None and t.dtype == torch.float16 for t in tensors)


def fp32_scan_inputs(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """The float16 ones of ``tensors`` as fp32 (others unchanged, ``None`` kept)."""
    return tuple(t.float() if t is not None and t.dtype == torch.float16 else t for t in tensors)


def run_fp32(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` computed in fp32 for an fp32 ``x`` (the scan output of a float16 block).

    Under ``torch.autocast`` the module runs with autocast disabled (its parameters are fp32 there), so
    neither its input nor its output is rounded to float16. A module whose parameters are float16 or
    bfloat16 (a model cast with ``.half()``, no autocast) runs on fp32 copies of them
    (:func:`torch.func.functional_call`; the gradients reach the originals). An fp32 module outside
    autocast is called as it is.

    Args:
        module: The op after the scan (a norm, a linear layer).
        x: Its fp32 input.

    Returns:
        ``module(x)`` in fp32.
    """
    low = {n: p.float() for n, p in module.named_parameters() if p.is_floating_point() and p.dtype != torch.float32}
    if not low and not autocast_on(x):
        return module(x)
    with torch.autocast(x.device.type, enabled=False):
        if not low:
            return module(x)
        return torch.func.functional_call(module, low, (x,))


def project_fp32(module: nn.Module, y: Tensor, dtype: torch.dtype) -> Tensor:
    """A mixer's output projection of its fp32 scan output ``y`` (float16 activations), in fp32.

    Args:
        module: The projection (``out_proj``).
        y: The fp32 scan output.
        dtype: The block's activation dtype (float16).

    Returns:
        :func:`run_fp32` of ``module``: fp32 under ``torch.autocast`` (its values may exceed float16's
        range; the residual add keeps them), else cast to ``dtype`` (a float16 model, whose next layer
        takes float16 only).
    """
    out = run_fp32(module, y)
    return out if autocast_on(y) else out.to(dtype)

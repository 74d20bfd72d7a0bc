"""``LayoutConv2d``: a dense ``nn.Conv2d`` that, on CPU, convolves a channel-last map in contiguous memory."""
from __future__ import annotations

from timm.layers import register_notrace_module
from torch import Tensor, nn

from ._fx import is_fx_tracing

__all__ = ["LayoutConv2d"]


@register_notrace_module  # a leaf for timm's FX feature extraction: it runs as in eager mode
class LayoutConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters and state-dict keys) for VMamba's stem and downsamples.

    On CPU a channel-last input (``torch.channels_last`` memory, what the blocks before it leave on
    CPU, or an NHWC map permuted to NCHW) is first copied to contiguous NCHW memory: oneDNN's
    channel-last path otherwise copies the whole weight into channel-last memory on every call (a fresh
    allocation each time, so the copy also pays its page faults). The map is far smaller than the
    weight in the later stages (stage 4's downsample: a ``384×14×14`` map, a ``768×384×3×3`` weight).
    Measured on a 2-core x86_64 VM, ``vmamba_tiny_s1l8`` batch 1 at 224², numba backend, alternating
    windows: 99.6 → 97.0 ms in the benchmark's process; 122 → 88 ms in a process where the weight copy's
    fresh allocation page-faulted on every call (glibc returns such large blocks to the system when they are
    freed). The output is then contiguous NCHW; the values are those of ``nn.Conv2d``. CUDA inputs are left as they
    are. timm's FX feature extraction keeps the module a leaf (so it runs as in eager mode); a plain
    ``torch.fx`` trace records an ``nn.Conv2d`` call.

    Shapes: ``(B, C_in, H, W)`` → ``(B, C_out, H', W')``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not is_fx_tracing() and x.device.type == "cpu" and not x.is_contiguous():
            x = x.contiguous()
        return super().forward(x)

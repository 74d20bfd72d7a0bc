"""``Linear2d``: a linear layer over the channels of an NCHW map (a 1×1 conv with a 2-D weight)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._fx import is_fx_tracing

__all__ = ["Linear2d"]


def _channels_last_dense(x: Tensor) -> bool:
    """Whether ``x`` ``(B, C, H, W)`` is laid out as a dense ``(B, H, W, C)`` array in memory."""
    if is_fx_tracing():  # a proxy: no layout to test; the convolution is the layout-agnostic form
        return False
    return x.dim() == 4 and x.permute(0, 2, 3, 1).is_contiguous()


class Linear2d(nn.Linear):
    """``nn.Linear`` applied to the channel dim of a ``(B, C_in, H, W)`` map → ``(B, C_out, H, W)``.

    The weight is stored as ``(out, in)`` (like ``nn.Linear``, and like VMamba's channel-first
    checkpoints), so model-level ``nn.Linear`` inits apply to it. A 4-D ``(out, in, 1, 1)`` weight
    found in a state dict (a 1×1 conv checkpoint) is reshaped on load.

    The output keeps the input's memory format. A channel-last input (``torch.channels_last``
    memory, what ``LayerNorm2d`` returns) is one GEMM over its ``(B·H·W, C_in)`` view with the bias
    fused; other layouts run as a 1×1 convolution. Both compute the same product. On an H100 the
    GEMMs cut a bf16 vmamba_tiny_s1l8 training step's GPU time from 41.1 to 39.1 ms, with about the
    same host time (``benchmarks/README.md``).
    """

    def forward(self, x: Tensor) -> Tensor:
        if _channels_last_dense(x):
            return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "weight"
        w = state_dict.get(key)
        if w is not None and w.dim() == 4 and w.shape[2:] == (1, 1):
            state_dict[key] = w.flatten(1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

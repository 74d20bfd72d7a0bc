"""``Linear2d``: a linear layer over the channels of an NCHW map (a 1×1 conv with a 2-D weight)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Linear2d"]


class Linear2d(nn.Linear):
    """``nn.Linear`` applied to the channel dim of a ``(B, C_in, H, W)`` map → ``(B, C_out, H, W)``.

    The weight is stored as ``(out, in)`` (like ``nn.Linear``, and like VMamba's channel-first
    checkpoints), so model-level ``nn.Linear`` inits apply to it. A 4-D ``(out, in, 1, 1)`` weight
    found in a state dict (a 1×1 conv checkpoint) is reshaped on load.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "weight"
        w = state_dict.get(key)
        if w is not None and w.dim() == 4 and w.shape[2:] == (1, 1):
            state_dict[key] = w.flatten(1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

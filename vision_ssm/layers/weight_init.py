"""Weight initialisations shared by several block families."""
from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn


def init_linear_layernorm(m: nn.Module) -> None:
    """VMamba / MambaAD ``_init_weights``: Linear ``trunc_normal(std=.02)`` with zero bias, LayerNorm 1 / 0.

    Apply with ``module.apply(init_linear_layernorm)``; other modules (convs, SS2D's bare
    parameters such as ``A_logs``, ``Ds``, ``dt_projs_*``) keep their own initialisation.
    """
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)

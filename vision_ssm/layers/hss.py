"""MambaAD's Hybrid State Space (HSS) block: ``x + DropPath(SS2D(LayerNorm(x)))`` with a hybrid scan.

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``HSSBlock``) and ``zhangzjn/ADer:
model/mambaad.py`` (the same class as ``VSSBlock``). The SS2D inside is the shared
:class:`vision_ssm.layers.SS2D` (v0 math) with a MambaAD scan family and K ∈ {2, 4, 8} directions.
"""
from __future__ import annotations

from typing import Any

from timm.layers import DropPath
from torch import Tensor, nn

from .ss2d import SS2D

__all__ = ["HSSBlock"]


class HSSBlock(nn.Module):
    """Pre-norm residual SS2D block without MLP (channels-last).

    ``out = x + DropPath(SS2D(LN(x)))`` for ``x (B, H, W, C)``.

    The SS2D uses MambaAD's direction composition (``blocks.md`` §2.3): the base curve of ``scan`` read
    on the map, its transpose, its ``rot90`` and its horizontal flip, then (for K=8) the full reversals
    of those four; K=4 keeps ``[k0, k1, rev k0, rev k1]`` and K=2 ``[k0, rev k0]``. Every family works
    at any ``H×W`` (see :func:`vision_ssm.ops.scan_order`); square power-of-two maps reproduce upstream.

    Args:
        dim: Channels ``C``.
        drop_path: Stochastic-depth rate of the residual branch.
        d_state: SSM state size ``N``.
        scan: Scan family: ``'hilbert'`` (MambaAD default), ``'sweep'``, ``'snake'`` (upstream ``'scan'``),
            ``'zorder'``, ``'zigzag'``.
        num_directions: Number of scan directions ``K`` (upstream ``num_direction``; 8 in every config).
        scan_index_size: Map size ``s`` (or ``(H, W)``) for which to store upstream's
            ``self_attention.scans.index_flat{,_inv}`` buffers (for strict loading of upstream checkpoints);
            ``None`` stores none. The scan itself always follows the input's size.
        norm_layer: Pre-norm (``nn.LayerNorm``, eps 1e-5, as MambaUPNet builds it; upstream's class default
            of eps 1e-6 is never used by the model).
        **ss2d_kwargs: Further :class:`~vision_ssm.layers.SS2D` options (``ssm_ratio``, ``dt_rank``,
            ``d_conv``, ``dropout``, ``backend``...). Defaults are MambaAD's: ``ssm_ratio=2``, ``d_conv=3``,
            conv bias, no linear bias, ``dt_rank=ceil(C/16)``.

    State-dict keys: ``ln_1.{weight,bias}``, ``self_attention.*`` (SS2D: ``in_proj.weight``, ``conv2d.*``,
    ``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm.*``,
    ``out_proj.weight`` [, ``scans.index_flat``, ``scans.index_flat_inv``]).
    """

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        d_state: int = 16,
        scan: str = "hilbert",
        num_directions: int = 8,
        scan_index_size: int | tuple[int, int] | None = None,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        device=None,
        dtype=None,
        **ss2d_kwargs: Any,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        self.scan = scan
        self.num_directions = num_directions
        self.ln_1 = norm_layer(dim, **dd)
        self.self_attention = SS2D(
            dim, d_state=d_state, scan=scan, directions=num_directions, scan_index_size=scan_index_size,
            **dd, **ss2d_kwargs,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``."""
        return x + self.drop_path(self.self_attention(self.ln_1(x)))

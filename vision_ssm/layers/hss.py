"""MambaAD's Hybrid State Space (HSS) block: ``x + DropPath(SS2D(LayerNorm(x)))`` with a hybrid scan.

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``HSSBlock``) and ``zhangzjn/ADer:
model/mambaad.py`` (the same class as ``VSSBlock``). The SS2D inside is the shared
:class:`vision_ssm.layers.SS2D` (v0 math) with a MambaAD scan family and K ∈ {2, 4, 8} directions.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from timm.layers import DropPath
from torch import Tensor, nn

from ._options import fold_legacy_ssm_kwargs, merge_ssm_cfg, pop_deprecated
from ._validate import check_input, check_int, check_rate
from .norm import NormLayer, get_norm
from .ss2d import SS2D

__all__ = ["MAMBAAD_SSM_DEFAULTS", "HSSBlock"]

#: MambaAD's SS2D settings where they differ from :class:`~vision_ssm.layers.SS2D`'s defaults.
MAMBAAD_SSM_DEFAULTS = {"scan": "hilbert", "directions": 8}


class HSSBlock(nn.Module):
    """Pre-norm residual SS2D block without MLP, channels-last (NHWC).

    ``out = x + DropPath(SS2D(LN(x)))`` for ``x (B, H, W, C)``.

    The SS2D uses MambaAD's direction composition (``blocks.md`` §2.3): the base curve of ``scan`` read
    on the map, its transpose, its ``rot90`` and its horizontal flip, then (for K=8) the full reversals
    of those four; K=4 keeps ``[k0, k1, rev k0, rev k1]`` and K=2 ``[k0, rev k0]``. Every family works
    at any ``H×W`` (see :func:`vision_ssm.ops.scan_order`); square power-of-two maps reproduce upstream.

    Args:
        dim: Channels ``C``.
        drop_path: Stochastic-depth rate of the residual branch.
        norm_layer: Pre-norm, a class or a name (``nn.LayerNorm``/``"ln"``, eps 1e-5, as MambaUPNet builds it;
            upstream's class default of eps 1e-6 is never used by the model). Must be channels-last.
        ssm_cfg: :class:`~vision_ssm.layers.SS2D` keyword arguments. MambaAD's defaults: ``ssm_ratio=2``,
            ``d_conv=3``, conv bias, no linear bias, ``dt_rank=ceil(C/16)``, ``d_state=16``, and
            :data:`MAMBAAD_SSM_DEFAULTS` (``scan="hilbert"``, ``directions=8``).
        d_state: Override of ``ssm_cfg["d_state"]`` (``None``: not given).
        scan: Override of ``ssm_cfg["scan"]``: ``'hilbert'``, ``'sweep'``, ``'snake'`` (upstream ``'scan'``),
            ``'zorder'``, ``'zigzag'`` (or anything :class:`~vision_ssm.layers.SS2D` accepts).
        directions: Override of ``ssm_cfg["directions"]``: ``K`` ∈ {2, 4, 8} (upstream ``num_direction``).
        scan_index_size: Map size ``s`` (or ``(H, W)``) for which to store upstream's
            ``self_attention.scans.index_flat{,_inv}`` buffers (for strict loading of upstream checkpoints);
            ``None`` stores none. The scan itself always follows the input's size.
        backend: Selective-scan backend of the SS2D (``None``: ``ssm_cfg``'s, else automatic).
        **kwargs: Deprecated: ``num_directions`` (now ``directions``) and SS2D options as keywords (now
            ``ssm_cfg``); honoured with a ``FutureWarning``.

    State-dict keys: ``ln_1.{weight,bias}``, ``self_attention.*`` (SS2D: ``in_proj.weight``, ``conv2d.*``,
    ``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm.*``,
    ``out_proj.weight`` [, ``scans.index_flat``, ``scans.index_flat_inv``]).
    """

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        *,
        norm_layer: NormLayer = nn.LayerNorm,
        ssm_cfg: Mapping[str, Any] | None = None,
        d_state: int | None = None,
        scan: Any = None,
        directions: Any = None,
        scan_index_size: int | tuple[int, int] | None = None,
        backend: str | None = None,
        device=None,
        dtype=None,
        **kwargs: Any,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int(dim, "dim", "HSSBlock")
        check_rate(drop_path, "drop_path", "HSSBlock")
        old = pop_deprecated(kwargs, {"num_directions": "directions"}, "HSSBlock")
        ssm_cfg = {**fold_legacy_ssm_kwargs(kwargs, "HSSBlock"), **(ssm_cfg or {})}
        cfg = merge_ssm_cfg(ssm_cfg, MAMBAAD_SSM_DEFAULTS, d_state=d_state, scan=scan,
                            directions=old.get("directions", directions), backend=backend)
        norm, _ = get_norm(norm_layer, channels_first=False)
        self.dim = dim
        self.ln_1 = norm(dim, **dd)
        self.self_attention = SS2D(dim, scan_index_size=scan_index_size, **cfg, **dd)
        self.scan = self.self_attention.scan
        self.directions = self.self_attention.directions
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``."""
        check_input(x, "HSSBlock", "NHWC", self.dim, self.self_attention.in_proj.weight)
        return x + self.drop_path(self.self_attention(self.ln_1(x)))

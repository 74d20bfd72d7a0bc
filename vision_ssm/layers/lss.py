"""MambaAD's Locality-enhanced State Space (LSS) module, the LSS decoder layer and the decoder (MambaUPNet).

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``LSSModule``, ``LSSLayer_up``, ``MambaUPNet``) and
``zhangzjn/ADer: model/mambaad.py`` (the same math as ``ConvBNSSMBlock``, ``VSSLayer_up``, ``MambaUPNet``).
The two repositories name the 7×7 branch's 1×1 convs differently (``conv1b7``/``conv1a7`` versus
``conv1b3``/``conv1a3``) and ADer carries an unused depthwise 3×3 (``conv33``);
:func:`remap_lss_state_dict` maps ADer keys onto the names used here (the MambaAD ones).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ._options import fold_legacy_ssm_kwargs, merge_ssm_cfg, pop_deprecated
from ._validate import check_input, check_int, check_ints, check_rate, skip_checks
from .hss import MAMBAAD_SSM_DEFAULTS, HSSBlock
from .norm import NormLayer
from .patch_expand import PatchExpand2D
from .weight_init import init_linear_layernorm

__all__ = ["LSSModule", "LSSLayer", "MambaUPNet", "group_lss_depth", "remap_lss_state_dict"]


def _conv_in_silu(in_chs: int, out_chs: int, kernel_size: int, groups: int = 1, bias: bool = True, dd=None):
    """``Conv2d → InstanceNorm2d (affine=False) → SiLU`` as an ``nn.Sequential`` (keys ``0.weight``[, ``0.bias``])."""
    dd = dd or {}
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, groups=groups, bias=bias, **dd),
        nn.InstanceNorm2d(out_chs),
        nn.SiLU(),
    )


class LSSModule(nn.Module):
    """A cascade of HSS blocks in parallel with two depthwise-conv branches, fused by a 1×1 conv.

    With ``x`` channels-last ``(B, H, W, C)``::

        ssm = HSSBlock_{depth-1}( ... HSSBlock_0(x))                       (B, H, W, C)
        l_k = [1×1 → IN → SiLU] → [DW k×k → IN → SiLU] → [1×1 → IN → SiLU](x)   k ∈ {5, 7}, NCHW
        out = finalconv11(cat[ssm, l_5, l_7]) + x                           (B, H, W, C)

    ``IN`` is ``nn.InstanceNorm2d`` without affine parameters or running statistics (no keys);
    the depthwise convs have no bias, the 1×1 convs do. The spatial size must be larger than 1×1
    (instance norm needs more than one element per channel in training).

    Args:
        dim: Channels ``C``.
        depth: Number of HSS blocks in the cascade (2 or 3 in MambaAD).
        drop_path: Stochastic-depth rate shared by all HSS blocks of this module.
        norm_layer: Norm of the HSS blocks, class or name (upstream ``nn.LayerNorm``, eps 1e-5).
        ssm_cfg: :class:`~vision_ssm.layers.SS2D` keyword arguments of the HSS blocks (MambaAD's defaults:
            see :class:`~vision_ssm.layers.HSSBlock`).
        d_state: Override of ``ssm_cfg["d_state"]`` (``None``: not given; default 16).
        scan: Override of ``ssm_cfg["scan"]`` (``'hilbert'``, ``'sweep'``, ``'snake'``, ``'zorder'``, ``'zigzag'``).
        directions: Override of ``ssm_cfg["directions"]``: ``K`` ∈ {2, 4, 8}.
        scan_index_size: Map size for the HSS blocks' stored upstream scan-index buffers (``None``: none).
        backend: Selective-scan backend of the HSS blocks.
        **kwargs: Deprecated ``num_directions`` and SS2D options as keywords (see :class:`HSSBlock`).

    State-dict keys (MambaAD naming): ``smm_blocks.{j}.*``, ``conv1b5.0.*``, ``conv55.0.weight``,
    ``conv1a5.0.*``, ``conv1b7.0.*``, ``conv77.0.weight``, ``conv1a7.0.*``, ``finalconv11.*``.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 2,
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
        check_int(dim, "dim", "LSSModule")
        check_int(depth, "depth", "LSSModule")
        check_rate(drop_path, "drop_path", "LSSModule")
        old = pop_deprecated(kwargs, {"num_directions": "directions"}, "LSSModule")
        ssm_cfg = {**fold_legacy_ssm_kwargs(kwargs, "LSSModule"), **(ssm_cfg or {})}
        cfg = merge_ssm_cfg(ssm_cfg, d_state=d_state, scan=scan, directions=old.get("directions", directions),
                            backend=backend)
        self.dim = dim
        self.smm_blocks = nn.Sequential(*[
            HSSBlock(dim, drop_path=drop_path, norm_layer=norm_layer, ssm_cfg=cfg, scan_index_size=scan_index_size,
                     **dd)
            for _ in range(depth)
        ])
        self.conv1b5 = _conv_in_silu(dim, dim, 1, dd=dd)
        self.conv55 = _conv_in_silu(dim, dim, 5, groups=dim, bias=False, dd=dd)
        self.conv1a5 = _conv_in_silu(dim, dim, 1, dd=dd)
        self.conv1b7 = _conv_in_silu(dim, dim, 1, dd=dd)
        self.conv77 = _conv_in_silu(dim, dim, 7, groups=dim, bias=False, dd=dd)
        self.conv1a7 = _conv_in_silu(dim, dim, 1, dd=dd)
        self.finalconv11 = nn.Conv2d(3 * dim, dim, 1, **dd)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Upstream init: every ``Conv2d`` (SS2D's depthwise conv included) ~ N(0, sqrt(2 / fan_out)),
        ``fan_out = k·k·out_channels / groups``; conv biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``, channels-last."""
        check_input(x, "LSSModule", "NHWC", self.dim, self.finalconv11.weight)
        if self.training and not skip_checks(x) and x.shape[1] * x.shape[2] < 2:
            raise ValueError(f"LSSModule: in training x needs more than one pixel (instance norm), got shape "
                             f"{tuple(x.shape)} (B, H, W, C)")
        ssm = self.smm_blocks(x).permute(0, 3, 1, 2)
        xc = x.permute(0, 3, 1, 2)
        l5 = self.conv1a5(self.conv55(self.conv1b5(xc)))
        l7 = self.conv1a7(self.conv77(self.conv1b7(xc)))
        out = self.finalconv11(torch.cat([ssm, l5, l7], dim=1))
        return out.permute(0, 2, 3, 1) + x


def group_lss_depth(depth: int) -> tuple[int, int]:
    """MambaAD's grouping of a layer's ``depth`` HSS blocks into LSS modules.

    Returns:
        ``(num_modules, blocks_per_module)``: ``depth / 3`` modules of 3 if ``depth % 3 == 0``,
        else ``depth / 2`` modules of 2 if ``depth`` is even.

    Raises:
        ValueError: for any other depth (upstream leaves such a layer without blocks).
    """
    check_int(depth, "depth", "group_lss_depth")
    if depth > 0 and depth % 3 == 0:
        return depth // 3, 3
    if depth > 0 and depth % 2 == 0:
        return depth // 2, 2
    raise ValueError(f"MambaAD decoder depths must be divisible by 3 or 2, got {depth}")


class LSSLayer(nn.Module):
    """One MambaAD decoder stage: optional :class:`PatchExpand2D`, then LSS modules in sequence.

    ``(B, H, W, 2·dim)`` → upsample → ``(B, 2H, 2W, dim)`` → LSS modules → ``(B, 2H, 2W, dim)``
    (without upsampling the input is already ``(B, H, W, dim)``). The ``depth`` HSS blocks are grouped
    into modules by :func:`group_lss_depth`; module ``m`` uses ``drop_path[m]``.

    Args:
        dim: Channels of the stage.
        depth: HSS blocks in the stage (divisible by 3 or 2).
        drop_path: One rate for all modules, or a sequence indexed by module.
        upsample: Put a ``PatchExpand2D(2·dim, dim)`` in front (input channels ``2·dim``).
        norm_layer: Norm of the HSS blocks and the upsampler (class or name).
        **lss_kwargs: Further :class:`LSSModule` options (``ssm_cfg``, ``d_state``, ``scan``, ``directions``,
            ``backend``...).

    State-dict keys: ``upsample.{expand.weight, norm.*}`` (when upsampling), ``blocks.{m}.*``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        drop_path: float | Sequence[float] = 0.0,
        upsample: bool = False,
        norm_layer: NormLayer = nn.LayerNorm,
        device=None,
        dtype=None,
        **lss_kwargs: Any,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = check_int(dim, "dim", "LSSLayer")
        num_modules, per_module = group_lss_depth(depth)
        dpr = [float(drop_path)] * num_modules if isinstance(drop_path, (int, float)) else list(drop_path)
        if len(dpr) < num_modules:
            raise ValueError(f"need {num_modules} drop-path rates, got {len(dpr)}")
        self.grad_checkpointing = False
        self.upsample = PatchExpand2D(2 * dim, dim, norm_layer=norm_layer, **dd) if upsample else None
        self.blocks = nn.Sequential(*[
            LSSModule(dim, depth=per_module, drop_path=dpr[m], norm_layer=norm_layer, **dd, **lss_kwargs)
            for m in range(num_modules)
        ])

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C_in)`` → ``(B, H', W', dim)``, channels-last."""
        check_input(x, "LSSLayer", "NHWC", 2 * self.dim if self.upsample is not None else self.dim)
        if self.upsample is not None:
            x = self.upsample(x)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x


class MambaUPNet(nn.Module):
    """MambaAD's decoder: LSS layers with ×2 :class:`~vision_ssm.layers.PatchExpand2D` upsampling.

    ``(B, dims[0], h, w)`` NCHW → ``[(B, dims[-1], 2^{n-1}h, 2^{n-1}w), …, (B, dims[1], 2h, 2w)]``: the
    outputs of layers ``n-1 … 1`` (finest first), NCHW. Layer 0 (no upsampling) refines the input and its
    output is not returned. ``dims[i] = dims[i-1] / 2``.

    Drop path: ``dpr = linspace(0, drop_path_rate, sum(depths))`` reversed (largest first); layer ``i``
    takes the slice ``dpr[sum(depths[:i]) : sum(depths[:i+1])]`` and its LSS module ``m`` uses entry ``m``.

    Args:
        dims: Channels per layer (upstream ``[512, 256, 128, 64]``).
        depths: HSS blocks per layer, each divisible by 3 or 2 (upstream ``[3, 4, 6, 3]``).
        drop_path_rate: Largest drop-path rate (upstream 0.2).
        scan_index_sizes: Per-layer map size for the stored upstream ``scans.index_flat*`` buffers
            (upstream at 256×256: ``[8, 16, 32, 64]``); ``None`` stores none.
        norm_layer: Norm of the HSS blocks and the upsamplers, class or name (``nn.LayerNorm``, eps 1e-5).
        ssm_cfg: :class:`~vision_ssm.layers.SS2D` keyword arguments of every HSS block (MambaAD's defaults:
            ``d_state=16``, ``scan='hilbert'``, ``directions=8``).
        d_state: Override of ``ssm_cfg["d_state"]`` (``None``: not given).
        scan: Override of ``ssm_cfg["scan"]`` (upstream ``'hilbert'``).
        directions: Override of ``ssm_cfg["directions"]`` (upstream 8).
        backend: Selective-scan backend of every HSS block.
        **kwargs: Deprecated ``num_directions`` and SS2D options as keywords.

    State-dict keys: ``layers_up.{i}.upsample.*`` (i ≥ 1), ``layers_up.{i}.blocks.{m}.*`` (LSS modules).
    """

    def __init__(
        self,
        dims: Sequence[int] = (512, 256, 128, 64),
        depths: Sequence[int] = (3, 4, 6, 3),
        *,
        drop_path_rate: float = 0.2,
        scan_index_sizes: Sequence[int | tuple[int, int]] | None = None,
        norm_layer: NormLayer = nn.LayerNorm,
        ssm_cfg: Mapping[str, Any] | None = None,
        d_state: int | None = None,
        scan: Any = None,
        directions: Any = None,
        backend: str | None = None,
        device=None,
        dtype=None,
        **kwargs: Any,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        old = pop_deprecated(kwargs, {"num_directions": "directions"}, "MambaUPNet")
        ssm_cfg = {**fold_legacy_ssm_kwargs(kwargs, "MambaUPNet"), **(ssm_cfg or {})}
        cfg = merge_ssm_cfg(ssm_cfg, MAMBAAD_SSM_DEFAULTS, d_state=d_state, scan=scan,
                            directions=old.get("directions", directions), backend=backend)
        dims, depths = check_ints(dims, "dims", "MambaUPNet"), check_ints(depths, "depths", "MambaUPNet")
        check_rate(drop_path_rate, "drop_path_rate", "MambaUPNet")
        if len(dims) != len(depths):
            raise ValueError(f"dims and depths must have the same length, got {dims} and {depths}")
        for i in range(1, len(dims)):
            if dims[i - 1] != 2 * dims[i]:
                raise ValueError(f"each decoder layer halves the channels (PatchExpand2D); got dims={dims}")
        if scan_index_sizes is not None and len(scan_index_sizes) != len(dims):
            raise ValueError("scan_index_sizes needs one entry per layer")
        self.dims = dims
        self.depths = depths
        self.ssm_cfg = cfg
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").flip(0).tolist()
        self.layers_up = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            start = sum(depths[:i])
            self.layers_up.append(LSSLayer(
                dim, depth, drop_path=dpr[start:start + depth], upsample=i > 0, norm_layer=norm_layer, ssm_cfg=cfg,
                scan_index_size=None if scan_index_sizes is None else scan_index_sizes[i], **dd,
            ))
        first = self.layers_up[0].blocks[0].smm_blocks[0]
        self.scan, self.directions = first.scan, first.directions
        self.apply(init_linear_layernorm)  # upstream: Linear trunc_normal(.02), LN 1/0

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for layer in self.layers_up:
            layer.grad_checkpointing = enable

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, dims[0], h, w)`` NCHW → list of NCHW maps, finest first (see class docstring)."""
        check_input(x, "MambaUPNet", "NCHW", self.dims[0])
        x = x.permute(0, 2, 3, 1)
        outs: list[Tensor] = []
        for i, layer in enumerate(self.layers_up):
            x = layer(x)
            if i > 0:
                outs.insert(0, x.permute(0, 3, 1, 2))
        return outs


_ADER_RENAMES = ((re.compile(r"\.conv1b3\."), ".conv1b7."), (re.compile(r"\.conv1a3\."), ".conv1a7."))
_ADER_UNUSED = re.compile(r"(^|\.)conv33\.")


def remap_lss_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map ADer-named LSS keys to the MambaAD names used here; other keys pass through unchanged.

    ``conv1b3 → conv1b7`` and ``conv1a3 → conv1a7`` (in ADer both wrap the 7×7 branch), and ADer's
    unused depthwise ``conv33`` is dropped. Keys are matched as ``.conv1b3.`` path components, so
    the function applies at any nesting level (module, decoder or whole model).
    """
    out = {}
    for k, v in state_dict.items():
        key = "." + k
        if _ADER_UNUSED.search(key):
            continue
        for pat, rep in _ADER_RENAMES:
            key = pat.sub(rep, key)
        out[key[1:]] = v
    return out

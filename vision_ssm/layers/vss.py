"""VMamba's VSS block and its stem / downsample / norm helpers (``MzeroMiko/VMamba: classification/models/vmamba.py``).

Layouts: a VMamba model is either channels-last (``norm_layer="ln"``: blocks see ``(B, H, W, C)``) or
channels-first (``"ln2d"``/``"bn"``: blocks see ``(B, C, H, W)``); blocks state it as ``channels_first``
(default: the norm's own layout). Module indices inside the
``nn.Sequential`` helpers match upstream so official state-dict keys (``patch_embed.0``,
``downsample.1``, ...) load unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, SelectAdaptivePool2d, get_act_layer
from timm.models import checkpoint_seq
from torch import Tensor, nn

from ._options import merge_ssm_cfg, pop_deprecated
from ._validate import check_input, check_int, check_number, check_rate
from .layout_conv import LayoutConv2d
from .linear2d import Linear2d
from .norm import NormLayer, get_norm
from .ss2d import SS2D

__all__ = [
    "Mlp", "PatchMerging2D", "Permute", "VMambaHead", "VMambaStage", "VSSBlock", "vmamba_downsample",
    "vmamba_norm", "vmamba_patch_embed",
]


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module (no parameters)."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


def vmamba_norm(norm_layer: NormLayer) -> tuple[Callable[..., nn.Module], bool]:
    """Resolve VMamba's ``norm_layer`` to ``(factory(C, **factory_kwargs) -> module, channels_first)``.

    The same as :func:`vision_ssm.layers.norm.get_norm` (kept under VMamba's name): ``"ln"``
    (``nn.LayerNorm`` over the last dim of ``(B, H, W, C)``), ``"ln2d"`` (LayerNorm over the channels of
    ``(B, C, H, W)``), ``"bn"`` (``BatchNorm2d``), any timm norm name, or a class/callable. LayerNorm eps
    is 1e-5 as upstream.
    """
    return get_norm(norm_layer)


class Mlp(nn.Module):
    """``fc1 → act → drop → fc2 → drop`` over channels; ``Linear2d`` when channels-first (2-D weights either way)."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: str | Callable = "gelu", drop: float = 0.0,
                 channels_first: bool = False, device=None, dtype=None):
        super().__init__()
        linear = Linear2d if channels_first else nn.Linear
        self.fc1 = linear(in_features, hidden_features, device=device, dtype=dtype)
        self.act = get_act_layer(act_layer)()
        self.fc2 = linear(hidden_features, in_features, device=device, dtype=dtype)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


# VSSBlock's pre-2025 keywords (upstream VSSBlock names) -> the block's / SS2D's names
_VSS_RENAMES = {
    "hidden_dim": "dim", "ssm_d_state": "d_state", "ssm_kwargs": "ssm_cfg",
    "ssm_dt_rank": "ssm_cfg.dt_rank", "ssm_act_layer": "ssm_cfg.act_layer", "ssm_conv": "ssm_cfg.d_conv",
    "ssm_conv_bias": "ssm_cfg.conv_bias", "ssm_drop_rate": "ssm_cfg.dropout", "ssm_gate": "ssm_cfg.gate",
    "ssm_force_fp32": "ssm_cfg.force_fp32",
}


class VSSBlock(nn.Module):
    """VMamba block: ``x + DropPath(SS2D(norm(x)))`` then, if ``mlp_ratio > 0``, ``x + DropPath(Mlp(norm2(x)))``.

    Input/output ``(B, H, W, C)`` when ``channels_first=False`` (VMamba ``"ln"``), ``(B, C, H, W)`` when
    ``True`` (``"ln2d"``/``"bn"``). State-dict keys: ``norm.*``, ``op.*`` (:class:`~vision_ssm.layers.SS2D`),
    ``norm2.*``, ``mlp.fc1.*``, ``mlp.fc2.*``.

    Args:
        dim: Channels ``C``.
        drop_path: Stochastic-depth rate.
        norm_layer: ``"ln"``, ``"ln2d"``, ``"bn"``, a timm norm name or a class/callable
            (:mod:`vision_ssm.layers.norm`).
        ssm_cfg: :class:`~vision_ssm.layers.SS2D` keyword arguments (``d_state``, ``ssm_ratio``, ``dt_rank``,
            ``act_layer``, ``d_conv``, ``conv_bias``, ``dropout``, ``gate``, ``force_fp32``, ``scan``,
            ``directions``, ``backend``, ...). ``ssm_ratio`` ``0`` drops the SSM branch. The block sets
            ``channels_first``; its default ``act_layer`` is ``"silu"``.
        d_state: Override of ``ssm_cfg["d_state"]`` (``None``: not given).
        ssm_ratio: Override of ``ssm_cfg["ssm_ratio"]``.
        scan: Override of ``ssm_cfg["scan"]``.
        directions: Override of ``ssm_cfg["directions"]``.
        backend: Selective-scan backend of SS2D (``None``: ``ssm_cfg``'s, else automatic).
        mlp_ratio: MLP hidden ratio; ``0`` drops the MLP branch (vanilla VMamba).
        mlp_act_layer: MLP activation.
        mlp_drop_rate: MLP dropout.
        post_norm: Apply each norm after its branch instead of before.
        channels_first: Layout (``None``: the norm's own, e.g. ``"ln"`` → NHWC, ``"ln2d"`` → NCHW).
        **kwargs: Deprecated spellings (``hidden_dim``, ``ssm_d_state``, ``ssm_kwargs``, ``ssm_conv``, ...),
            honoured with a ``FutureWarning``.
    """

    def __init__(
            self,
            dim: int | None = None,
            drop_path: float = 0.0,
            norm_layer: NormLayer = "ln",
            *,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            ssm_ratio: float | None = None,
            scan: Any = None,
            directions: Any = None,
            backend: str | None = None,
            mlp_ratio: float = 4.0,
            mlp_act_layer: str | Callable = "gelu",
            mlp_drop_rate: float = 0.0,
            post_norm: bool = False,
            channels_first: bool | None = None,
            device=None,
            dtype=None,
            **kwargs: Any,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        old = pop_deprecated(kwargs, _VSS_RENAMES, "VSSBlock")
        if kwargs:
            raise TypeError(f"VSSBlock got unexpected keyword arguments {sorted(kwargs)}")
        dim = old.pop("dim") if dim is None and "dim" in old else dim
        if dim is None:
            raise TypeError("VSSBlock needs dim")
        check_int(dim, "dim", "VSSBlock")
        check_rate(drop_path, "drop_path", "VSSBlock")
        check_number(mlp_ratio, "mlp_ratio", "VSSBlock", low=0.0)
        ssm_cfg = {**old.pop("ssm_cfg", {}), **(ssm_cfg or {})}
        legacy = {k[8:]: v for k, v in old.items() if k.startswith("ssm_cfg.")}
        norm, channels_first = get_norm(norm_layer, channels_first)
        cfg = merge_ssm_cfg(ssm_cfg, dict(act_layer="silu"), **legacy, d_state=old.get("d_state", d_state),
                            ssm_ratio=ssm_ratio, scan=scan, directions=directions, backend=backend)
        cfg["channels_first"] = channels_first
        self.channels_first = channels_first
        self.post_norm = post_norm
        self.ssm_branch = cfg.get("ssm_ratio", 2.0) > 0
        self.mlp_branch = mlp_ratio > 0
        self.dim = dim
        if self.ssm_branch:
            self.norm = norm(dim, **dd)
            self.op = SS2D(dim, **cfg, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if self.mlp_branch:
            self.norm2 = norm(dim, **dd)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), mlp_act_layer, mlp_drop_rate, channels_first, **dd)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` → same, or ``(B, C, H, W)`` → same when ``channels_first``."""
        weight = self.op.in_proj.weight if self.ssm_branch else (self.mlp.fc1.weight if self.mlp_branch else None)
        check_input(x, "VSSBlock", "NCHW" if self.channels_first else "NHWC", self.dim, weight)
        if self.ssm_branch:
            if self.post_norm:
                x = x + self.drop_path(self.norm(self.op(x)))
            else:
                x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp_branch:
            if self.post_norm:
                x = x + self.drop_path(self.norm2(self.mlp(x)))
            else:
                x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


def vmamba_patch_embed(in_chans: int, embed_dim: int, patch_size: int = 4, patch_norm: bool = True,
                       norm_layer: NormLayer = "ln", version: str = "v1", device=None, dtype=None) -> nn.Sequential:
    """VMamba stem: ``(B, in_chans, H, W)`` → ``(B, H/4, W/4, C)`` (``ln``) or ``(B, C, H/4, W/4)``.

    ``v1``: Conv(k=s=patch) → norm (keys ``0``, ``2``). ``v2``: Conv(3×3, s2) → norm → GELU →
    Conv(3×3, s2) → norm (keys ``0``, ``2``, ``5``, ``7``; ``patch_size`` must be 4).
    """
    dd = {"device": device, "dtype": dtype}
    norm, cf = get_norm(norm_layer)
    to_last = nn.Identity() if cf else Permute(0, 2, 3, 1)
    to_first = nn.Identity() if cf else Permute(0, 3, 1, 2)
    if version == "v1":
        return nn.Sequential(
            LayoutConv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=True, **dd),
            to_last,
            norm(embed_dim, **dd) if patch_norm else nn.Identity(),
        )
    if version == "v2":
        if patch_size != 4:
            raise ValueError("patchembed v2 has a fixed stride of 4")
        mid = embed_dim // 2
        return nn.Sequential(
            LayoutConv2d(in_chans, mid, 3, stride=2, padding=1, **dd),
            to_last if patch_norm else nn.Identity(),
            norm(mid, **dd) if patch_norm else nn.Identity(),
            to_first if patch_norm else nn.Identity(),
            nn.GELU(),
            LayoutConv2d(mid, embed_dim, 3, stride=2, padding=1, **dd),
            to_last,
            norm(embed_dim, **dd) if patch_norm else nn.Identity(),
        )
    raise ValueError(f"unknown patchembed version {version!r} (expected 'v1' or 'v2')")


class PatchMerging2D(nn.Module):
    """Downsample v1: gather each 2×2 patch into ``4C`` channels → norm → ``Linear(4C → out)`` (no bias).

    ``(B, H, W, dim)`` → ``(B, ⌈H/2⌉, ⌈W/2⌉, out_dim)`` (odd sizes are zero-padded), or the NCHW equivalent
    when ``channels_first``. Keys: ``norm.*`` ``(4·dim)``, ``reduction.weight`` ``(out_dim, 4·dim)``.

    Args:
        dim: Input channels.
        out_dim: Output channels.
        norm_layer: Norm over the ``4·dim`` gathered channels (name or class, :mod:`vision_ssm.layers.norm`).
        channels_first: Layout (``None``: the norm's own).
    """

    def __init__(self, dim: int, out_dim: int, norm_layer: NormLayer = "ln", channels_first: bool | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.dim = check_int(dim, "dim", "PatchMerging2D")
        self.out_dim = check_int(out_dim, "out_dim", "PatchMerging2D")
        norm, self.channels_first = get_norm(norm_layer, channels_first)
        linear = Linear2d if self.channels_first else nn.Linear
        self.reduction = linear(4 * dim, out_dim, bias=False, device=device, dtype=dtype)
        self.norm = norm(4 * dim, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, dim)`` → ``(B, ⌈H/2⌉, ⌈W/2⌉, out_dim)``, or the NCHW equivalent when ``channels_first``."""
        check_input(x, "PatchMerging2D", "NCHW" if self.channels_first else "NHWC", self.dim, self.reduction.weight)
        if self.channels_first:
            H, W = x.shape[-2:]
            x = F.pad(x, (0, W % 2, 0, H % 2))
            x = torch.cat([x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]], 1)
        else:
            H, W = x.shape[1:3]
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


def vmamba_downsample(dim: int, out_dim: int, norm_layer: NormLayer = "ln", version: str = "v3",
                      device=None, dtype=None) -> nn.Module:
    """VMamba downsample between stages (halves H and W).

    ``v1``: :class:`PatchMerging2D`. ``v2``: Conv(2×2, s2) → norm. ``v3``: Conv(3×3, s2, p1) → norm.
    For ``v2``/``v3`` the keys are ``1.*`` (conv) and ``3.*`` (norm), as upstream.
    """
    dd = {"device": device, "dtype": dtype}
    if version == "v1":
        return PatchMerging2D(dim, out_dim, norm_layer, **dd)
    norm, cf = get_norm(norm_layer)
    if version == "v2":
        conv = LayoutConv2d(dim, out_dim, 2, stride=2, **dd)
    elif version == "v3":
        conv = LayoutConv2d(dim, out_dim, 3, stride=2, padding=1, **dd)
    else:
        raise ValueError(f"unknown downsample version {version!r} (expected 'v1', 'v2' or 'v3')")
    return nn.Sequential(
        nn.Identity() if cf else Permute(0, 3, 1, 2),
        conv,
        nn.Identity() if cf else Permute(0, 2, 3, 1),
        norm(out_dim, **dd),
    )


class VMambaStage(nn.Module):
    """``blocks`` (VSSBlock × depth) then ``downsample`` (Identity for the last stage)."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample
        self.grad_checkpointing = False

    def forward_blocks(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(self.forward_blocks(x))


class VMambaHead(nn.Module):
    """Upstream's ``classifier``: ``norm`` (applied in ``forward_features``) + pool → dropout → ``head``."""

    def __init__(self, num_features: int, num_classes: int, global_pool: str, norm: nn.Module, drop_rate: float,
                 device=None, dtype=None):
        super().__init__()
        self.norm = norm
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes, device=device, dtype=dtype) if num_classes else nn.Identity()

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(self.global_pool(x))
        return x if pre_logits else self.head(x)

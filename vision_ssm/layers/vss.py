"""VMamba's VSS block and its stem / downsample / norm helpers (``MzeroMiko/VMamba: classification/models/vmamba.py``).

Layouts: a VMamba model is either channels-last (``norm_layer="ln"``: blocks see ``(B, H, W, C)``) or
channels-first (``"ln2d"``/``"bn"``: blocks see ``(B, C, H, W)``). Module indices inside the
``nn.Sequential`` helpers match upstream so official state-dict keys (``patch_embed.0``,
``downsample.1``, ...) load unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, SelectAdaptivePool2d, get_act_layer
from timm.models import checkpoint_seq
from torch import Tensor, nn

from .linear2d import Linear2d
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


def vmamba_norm(norm_layer: str) -> tuple[Callable[[int], nn.Module], bool]:
    """Resolve VMamba's norm name to ``(factory(C) -> module, channels_first)``.

    ``"ln"``: ``nn.LayerNorm`` over the last dim of ``(B, H, W, C)``; ``"ln2d"``: LayerNorm over the
    channels of ``(B, C, H, W)``; ``"bn"``: ``BatchNorm2d``. LayerNorm eps is 1e-5 as upstream.
    """
    name = norm_layer.lower()
    if name == "ln":
        return (lambda c, **kw: nn.LayerNorm(c, eps=1e-5, **kw)), False
    if name == "ln2d":
        return (lambda c, **kw: LayerNorm2d(c, eps=1e-5, **kw)), True
    if name == "bn":
        return (lambda c, **kw: nn.BatchNorm2d(c, **kw)), True
    raise ValueError(f"unknown VMamba norm_layer {norm_layer!r} (expected 'ln', 'ln2d' or 'bn')")


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


class VSSBlock(nn.Module):
    """VMamba block: ``x + DropPath(SS2D(norm(x)))`` then, if ``mlp_ratio > 0``, ``x + DropPath(Mlp(norm2(x)))``.

    Input/output ``(B, H, W, C)`` for ``norm_layer="ln"``, ``(B, C, H, W)`` for ``"ln2d"``/``"bn"``.
    State-dict keys: ``norm.*``, ``op.*`` (:class:`~vision_ssm.layers.SS2D`), ``norm2.*``, ``mlp.fc1.*``, ``mlp.fc2.*``.

    Args:
        hidden_dim: Channels ``C``.
        drop_path: Stochastic-depth rate.
        norm_layer: ``"ln"``, ``"ln2d"`` or ``"bn"`` (sets the layout).
        ssm_d_state: SS2D state size.
        ssm_ratio: SS2D inner width ratio; ``0`` drops the SSM branch.
        ssm_dt_rank: SS2D ``dt_rank``.
        ssm_act_layer: SS2D activation.
        ssm_conv: SS2D depthwise conv size.
        ssm_conv_bias: SS2D conv bias.
        ssm_drop_rate: Dropout after ``out_proj``.
        ssm_gate: SS2D ``z`` gate (v0: True; v2 ``_noz``: False).
        ssm_force_fp32: SS2D ``force_fp32``.
        scan: Scan family for SS2D.
        directions: Number of scan directions for SS2D.
        mlp_ratio: MLP hidden ratio; ``0`` drops the MLP branch (vanilla VMamba).
        mlp_act_layer: MLP activation.
        mlp_drop_rate: MLP dropout.
        post_norm: Apply each norm after its branch instead of before.
        ssm_kwargs: Extra :class:`SS2D` arguments (e.g. ``backend``).
    """

    def __init__(
            self,
            hidden_dim: int,
            drop_path: float = 0.0,
            norm_layer: str = "ln",
            ssm_d_state: int = 16,
            ssm_ratio: float = 2.0,
            ssm_dt_rank: int | str = "auto",
            ssm_act_layer: str | Callable = "silu",
            ssm_conv: int = 3,
            ssm_conv_bias: bool = True,
            ssm_drop_rate: float = 0.0,
            ssm_gate: bool = True,
            ssm_force_fp32: bool = True,
            scan: str = "sweep",
            directions: int = 4,
            mlp_ratio: float = 4.0,
            mlp_act_layer: str | Callable = "gelu",
            mlp_drop_rate: float = 0.0,
            post_norm: bool = False,
            ssm_kwargs: dict | None = None,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        norm, channels_first = vmamba_norm(norm_layer)
        self.channels_first = channels_first
        self.post_norm = post_norm
        self.ssm_branch = ssm_ratio > 0
        self.mlp_branch = mlp_ratio > 0
        if self.ssm_branch:
            self.norm = norm(hidden_dim, **dd)
            self.op = SS2D(
                hidden_dim, d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank, d_conv=ssm_conv,
                conv_bias=ssm_conv_bias, act_layer=ssm_act_layer, gate=ssm_gate, channels_first=channels_first,
                scan=scan, directions=directions, force_fp32=ssm_force_fp32, dropout=ssm_drop_rate,
                **(ssm_kwargs or {}), **dd,
            )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if self.mlp_branch:
            self.norm2 = norm(hidden_dim, **dd)
            self.mlp = Mlp(hidden_dim, int(hidden_dim * mlp_ratio), mlp_act_layer, mlp_drop_rate, channels_first, **dd)

    def forward(self, x: Tensor) -> Tensor:
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
                       norm_layer: str = "ln", version: str = "v1", device=None, dtype=None) -> nn.Sequential:
    """VMamba stem: ``(B, in_chans, H, W)`` → ``(B, H/4, W/4, C)`` (``ln``) or ``(B, C, H/4, W/4)``.

    ``v1``: Conv(k=s=patch) → norm (keys ``0``, ``2``). ``v2``: Conv(3×3, s2) → norm → GELU →
    Conv(3×3, s2) → norm (keys ``0``, ``2``, ``5``, ``7``; ``patch_size`` must be 4).
    """
    dd = {"device": device, "dtype": dtype}
    norm, cf = vmamba_norm(norm_layer)
    to_last = nn.Identity() if cf else Permute(0, 2, 3, 1)
    to_first = nn.Identity() if cf else Permute(0, 3, 1, 2)
    if version == "v1":
        return nn.Sequential(
            nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=True, **dd),
            to_last,
            norm(embed_dim, **dd) if patch_norm else nn.Identity(),
        )
    if version == "v2":
        if patch_size != 4:
            raise ValueError("patchembed v2 has a fixed stride of 4")
        mid = embed_dim // 2
        return nn.Sequential(
            nn.Conv2d(in_chans, mid, 3, stride=2, padding=1, **dd),
            to_last if patch_norm else nn.Identity(),
            norm(mid, **dd) if patch_norm else nn.Identity(),
            to_first if patch_norm else nn.Identity(),
            nn.GELU(),
            nn.Conv2d(mid, embed_dim, 3, stride=2, padding=1, **dd),
            to_last,
            norm(embed_dim, **dd) if patch_norm else nn.Identity(),
        )
    raise ValueError(f"unknown patchembed version {version!r} (expected 'v1' or 'v2')")


class PatchMerging2D(nn.Module):
    """Downsample v1: gather each 2×2 patch into ``4C`` channels → norm → ``Linear(4C → out)`` (no bias).

    ``(B, H, W, C)`` → ``(B, ⌈H/2⌉, ⌈W/2⌉, out)`` (channels-last; odd sizes are zero-padded), or the NCHW
    equivalent when the norm is channels-first. Keys: ``norm.*`` ``(4C)``, ``reduction.weight`` ``(out, 4C)``.
    """

    def __init__(self, dim: int, out_dim: int, norm_layer: str = "ln", device=None, dtype=None):
        super().__init__()
        norm, self.channels_first = vmamba_norm(norm_layer)
        linear = Linear2d if self.channels_first else nn.Linear
        self.reduction = linear(4 * dim, out_dim, bias=False, device=device, dtype=dtype)
        self.norm = norm(4 * dim, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_first:
            H, W = x.shape[-2:]
            x = F.pad(x, (0, W % 2, 0, H % 2))
            x = torch.cat([x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]], 1)
        else:
            H, W = x.shape[1:3]
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


def vmamba_downsample(dim: int, out_dim: int, norm_layer: str = "ln", version: str = "v3",
                      device=None, dtype=None) -> nn.Module:
    """VMamba downsample between stages (halves H and W).

    ``v1``: :class:`PatchMerging2D`. ``v2``: Conv(2×2, s2) → norm. ``v3``: Conv(3×3, s2, p1) → norm.
    For ``v2``/``v3`` the keys are ``1.*`` (conv) and ``3.*`` (norm), as upstream.
    """
    dd = {"device": device, "dtype": dtype}
    if version == "v1":
        return PatchMerging2D(dim, out_dim, norm_layer, **dd)
    norm, cf = vmamba_norm(norm_layer)
    if version == "v2":
        conv = nn.Conv2d(dim, out_dim, 2, stride=2, **dd)
    elif version == "v3":
        conv = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1, **dd)
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

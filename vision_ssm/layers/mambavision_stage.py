"""MambaVision blocks and stages: stem, conv blocks (stages 1-2), windowed hybrid blocks (stages 3-4).

Layouts: stages take and return ``NCHW`` maps. Inside a hybrid stage the map is zero-padded
(right/bottom) to a multiple of the window size and cut into windows of ``ws x ws`` tokens,
``(B*nW, ws*ws, C)``, windows row-major over the window grid and tokens row-major inside a window;
every block of the stage (Mamba mixer and attention alike) runs on these token sequences.

Paper: https://arxiv.org/abs/2407.08083; official code: https://github.com/NVlabs/MambaVision.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath, Mlp, register_notrace_function
from timm.models import checkpoint_seq
from torch import Tensor, nn

from ._options import merge_ssm_cfg, pop_deprecated
from ._validate import check_input, check_int, check_number, check_rate
from .mambavision_mixer import MambaVisionAttention, MambaVisionMixer
from .norm import NormLayer, get_norm

__all__ = [
    "MambaVisionBlock",
    "MambaVisionConvBlock",
    "MambaVisionStage",
    "MambaVisionStem",
    "mambavision_attn_indices",
    "window_partition",
    "window_reverse",
]


@register_notrace_function
def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Zero-pad a map to a multiple of ``window_size`` and cut it into windows of tokens.

    Args:
        x: Map ``(B, C, H, W)``.
        window_size: Window side ``ws``.

    Returns:
        Tokens ``(B * nW, ws*ws, C)`` with ``nW = ceil(H/ws) * ceil(W/ws)``; windows row-major over
        the window grid, tokens row-major inside each window. Padded positions are zeros.
    """
    check_input(x, "window_partition", "NCHW")
    check_int(window_size, "window_size", "window_partition")
    H, W = x.shape[2], x.shape[3]
    ws = window_size
    pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
    if pad_b or pad_r:
        x = F.pad(x, (0, pad_r, 0, pad_b))
    return rearrange(x, "b c (nh wh) (nw ww) -> (b nh nw) (wh ww) c", wh=ws, ww=ws)


@register_notrace_function
def window_reverse(windows: Tensor, window_size: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: reassemble windows and crop the padding.

    Args:
        windows: Tokens ``(B * nW, ws*ws, C)``.
        window_size: Window side ``ws``.
        H: Height of the map before padding.
        W: Width of the map before padding.

    Returns:
        Map ``(B, C, H, W)``.
    """
    ws = window_size
    nh, nw = -(-H // ws), -(-W // ws)
    x = rearrange(windows, "(b nh nw) (wh ww) c -> b c (nh wh) (nw ww)", nh=nh, nw=nw, wh=ws, ww=ws)
    if nh * ws != H or nw * ws != W:
        x = x[:, :, :H, :W]
    return x.contiguous()


def _legacy_mixer_kwargs(kwargs: dict[str, Any], ssm_cfg: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    """``ssm_cfg`` with the deprecated ``mixer_kwargs=`` folded in (``ssm_cfg`` wins)."""
    old = pop_deprecated(kwargs, {"mixer_kwargs": "ssm_cfg"}, owner)
    if kwargs:
        raise TypeError(f"{owner} got unexpected keyword arguments {sorted(kwargs)}")
    return {**(old.get("ssm_cfg") or {}), **(ssm_cfg or {})}


def mambavision_attn_indices(depth: int) -> list[int]:
    """Indices of the attention blocks of a hybrid stage: the last ``depth // 2`` blocks."""
    return list(range(depth - depth // 2, depth))


class MambaVisionStem(nn.Sequential):
    """Stride-4 stem: (Conv3x3 s2, BN eps 1e-4, ReLU) x 2, ``in_chans -> in_dim -> dim``; NCHW in and out."""

    def __init__(self, in_chans: int = 3, in_dim: int = 64, dim: int = 96) -> None:
        super().__init__(
            nn.Conv2d(in_chans, in_dim, 3, 2, 1, bias=False),
            nn.BatchNorm2d(in_dim, eps=1e-4),
            nn.ReLU(),
            nn.Conv2d(in_dim, dim, 3, 2, 1, bias=False),
            nn.BatchNorm2d(dim, eps=1e-4),
            nn.ReLU(),
        )


class MambaVisionConvBlock(nn.Module):
    """Residual conv block of stages 1-2: Conv3x3-BN-GELU(tanh)-Conv3x3-BN (+ optional layer scale); NCHW.

    Args:
        dim: Channels.
        drop_path: Stochastic-depth rate of the residual branch.
        layer_scale: Initial value of the learnable per-channel scale ``gamma``; ``None``: no scale.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float | None = None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", "MambaVisionConvBlock")
        check_rate(drop_path, "drop_path", "MambaVisionConvBlock")
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.norm1 = nn.BatchNorm2d(dim, eps=1e-5)
        self.act1 = nn.GELU(approximate="tanh")
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.norm2 = nn.BatchNorm2d(dim, eps=1e-5)
        if layer_scale is not None:
            self.gamma = nn.Parameter(layer_scale * torch.ones(dim))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        check_input(x, "MambaVisionConvBlock", "NCHW", self.dim, self.conv1.weight)
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class MambaVisionBlock(nn.Module):
    """Pre-norm block on window tokens: ``x + γ1·mixer(LN(x))``, then ``x + γ2·MLP(LN(x))``.

    Args:
        dim: Token channels ``C``.
        num_heads: Heads of the attention mixer.
        attention: Use :class:`MambaVisionAttention` instead of :class:`MambaVisionMixer`.
        mlp_ratio: MLP hidden width / ``dim``.
        qkv_bias: Bias on the attention ``qkv`` projection.
        proj_drop: Dropout after the attention projection and inside the MLP.
        attn_drop: Attention-probability dropout.
        drop_path: Stochastic-depth rate of both residual branches.
        layer_scale: Initial value of the learnable ``gamma_1``/``gamma_2`` ``(C,)``; ``None``: no scale.
        norm_layer: The two pre-norms over the token channels, a class or a name (default ``nn.LayerNorm``,
            eps 1e-5, as upstream; see :mod:`vision_ssm.layers.norm`).
        ssm_cfg: :class:`MambaVisionMixer` keyword arguments (``d_state``, ``d_conv``, ``expand``,
            ``double_dt_bias``, ``backend``, ...); unused by an attention block.
        backend: Override of ``ssm_cfg["backend"]``, the mixer's selective-scan backend (``None``: not given).
        **kwargs: ``mixer_kwargs=`` (deprecated spelling of ``ssm_cfg``), honoured with a ``FutureWarning``.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            attention: bool = False,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
            layer_scale: float | None = None,
            norm_layer: NormLayer = nn.LayerNorm,
            ssm_cfg: Mapping[str, Any] | None = None,
            backend: str | None = None,
            **kwargs: Any,
    ) -> None:
        super().__init__()
        ssm_cfg = _legacy_mixer_kwargs(kwargs, ssm_cfg, "MambaVisionBlock")
        self.dim = check_int(dim, "dim", "MambaVisionBlock")
        check_rate(drop_path, "drop_path", "MambaVisionBlock")
        check_number(mlp_ratio, "mlp_ratio", "MambaVisionBlock", low=0.0, low_open=True)
        norm, _ = get_norm(norm_layer, channels_first=False)
        self.norm1 = norm(dim)
        if attention:
            self.mixer = MambaVisionAttention(
                dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        else:
            self.mixer = MambaVisionMixer(dim, **merge_ssm_cfg(ssm_cfg, backend=backend))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)
        if layer_scale is not None:
            self.gamma_1 = nn.Parameter(layer_scale * torch.ones(dim))
            self.gamma_2 = nn.Parameter(layer_scale * torch.ones(dim))
        else:
            self.register_parameter("gamma_1", None)
            self.register_parameter("gamma_2", None)

    def forward(self, x: Tensor) -> Tensor:
        """``(B', L', C) -> (B', L', C)``."""
        check_input(x, "MambaVisionBlock", "NLC", self.dim, self.mlp.fc1.weight)
        y = self.mixer(self.norm1(x))
        if self.gamma_1 is not None:
            y = y * self.gamma_1
        x = x + self.drop_path(y)
        y = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            y = y * self.gamma_2
        return x + self.drop_path(y)


class MambaVisionStage(nn.Module):
    """One MambaVision stage: optional stride-2 downsample, then conv blocks or windowed hybrid blocks.

    A conv stage (``conv=True``, stages 1-2) runs :class:`MambaVisionConvBlock` on the map. A hybrid
    stage runs :class:`MambaVisionBlock` on the window tokens of :func:`window_partition`, Mamba mixers
    first and attention in ``attn_indices`` (default: the last ``depth // 2`` blocks).

    Unlike upstream (``levels.i.downsample`` at the end of a stage), the downsample opens the *next*
    stage, so a stage's output is its feature map; :func:`vision_ssm.models.mambavision.checkpoint_filter_fn`
    moves the weights.

    Args:
        in_dim: Input channels.
        dim: Channels of the stage (after the downsample).
        depth: Number of blocks.
        num_heads: Heads of the attention blocks.
        window_size: Window side of a hybrid stage.
        conv: Conv stage instead of hybrid.
        downsample: Start with Conv3x3 s2 (no bias, no norm) ``in_dim -> dim``; otherwise
            ``in_dim`` must equal ``dim``.
        attn_indices: Which blocks of a hybrid stage use attention.
        mlp_ratio: MLP ratio of the hybrid blocks.
        qkv_bias: Attention ``qkv`` bias.
        proj_drop: Projection / MLP dropout.
        attn_drop: Attention dropout.
        drop_path: Stochastic-depth rate, one per block or one for all.
        layer_scale: Layer-scale init of the hybrid blocks (``None``: off).
        layer_scale_conv: Layer-scale init of the conv blocks (``None``: off).
        ssm_cfg: :class:`MambaVisionMixer` keyword arguments of the Mamba blocks.
        backend: Override of ``ssm_cfg["backend"]`` (``None``: not given).
        **kwargs: ``mixer_kwargs=`` (deprecated spelling of ``ssm_cfg``), honoured with a ``FutureWarning``.
    """

    def __init__(
            self,
            in_dim: int,
            dim: int,
            depth: int,
            num_heads: int = 8,
            window_size: int = 7,
            conv: bool = False,
            downsample: bool = True,
            attn_indices: Sequence[int] | None = None,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float | Sequence[float] = 0.0,
            layer_scale: float | None = None,
            layer_scale_conv: float | None = None,
            ssm_cfg: Mapping[str, Any] | None = None,
            backend: str | None = None,
            **kwargs: Any,
    ) -> None:
        super().__init__()
        ssm_cfg = merge_ssm_cfg(_legacy_mixer_kwargs(kwargs, ssm_cfg, "MambaVisionStage"), backend=backend)
        check_int(in_dim, "in_dim", "MambaVisionStage")
        check_int(dim, "dim", "MambaVisionStage")
        check_int(depth, "depth", "MambaVisionStage")
        check_int(window_size, "window_size", "MambaVisionStage")
        if not downsample and in_dim != dim:
            raise ValueError(f"MambaVisionStage: in_dim {in_dim} != dim {dim} needs downsample=True")
        self.conv = conv
        self.in_dim = in_dim
        self.window_size = window_size
        self.grad_checkpointing = False
        self.downsample = nn.Conv2d(in_dim, dim, 3, 2, 1, bias=False) if downsample else nn.Identity()
        dpr = list(drop_path) if isinstance(drop_path, Sequence) else [drop_path] * depth
        if len(dpr) != depth:
            raise ValueError(f"MambaVisionStage: {len(dpr)} drop-path rates for {depth} blocks")
        for i, p in enumerate(dpr):
            check_rate(p, f"drop_path[{i}]", "MambaVisionStage")
        if conv:
            blocks = [MambaVisionConvBlock(dim, drop_path=dpr[i], layer_scale=layer_scale_conv) for i in range(depth)]
        else:
            attn = set(mambavision_attn_indices(depth) if attn_indices is None else attn_indices)
            blocks = [
                MambaVisionBlock(
                    dim,
                    num_heads=num_heads,
                    attention=i in attn,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    proj_drop=proj_drop,
                    attn_drop=attn_drop,
                    drop_path=dpr[i],
                    layer_scale=layer_scale,
                    ssm_cfg=ssm_cfg,
                )
                for i in range(depth)
            ]
        self.blocks = nn.Sequential(*blocks)

    def _blocks(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim, H, W) -> (B, dim, H', W')`` with ``H' = ceil(H/2)`` after a downsample."""
        check_input(x, "MambaVisionStage", "NCHW", self.in_dim)
        x = self.downsample(x)
        if self.conv:
            return self._blocks(x)
        H, W = x.shape[2], x.shape[3]
        t = self._blocks(window_partition(x, self.window_size))
        return window_reverse(t, self.window_size, H, W)

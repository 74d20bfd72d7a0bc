"""MambaVision token mixers: the selective-scan mixer and the attention mixer.

Both map tokens ``(B', L', C) -> (B', L', C)``, where ``B'`` counts windows and ``L'`` is the
number of tokens in a window (see :mod:`vision_ssm.layers.mambavision_stage`).

Paper: "MambaVision: A Hybrid Mamba-Transformer Vision Backbone", Hatamizadeh & Kautz, CVPR 2025,
https://arxiv.org/abs/2407.08083. Official code and weights: https://github.com/NVlabs/MambaVision.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_function
from torch import Tensor, nn

from ..ops import selective_scan
from ._options import pop_deprecated
from ._precision import fp32_scan_inputs, project_fp32, scan_in_fp32
from ._validate import check_input, check_int, check_number, check_rate
from .weight_init import A_log_init, D_init, init_dt_proj_

__all__ = ["MambaVisionMixer", "MambaVisionAttention"]

# FX: trace the scan call as one leaf node (it validates shapes and dispatches to a backend).
register_notrace_function(selective_scan)


class MambaVisionMixer(nn.Module):
    """MambaVision's selective-scan token mixer (``MambaVisionMixer`` upstream) on token sequences.

    Layout: fixed, tokens ``(B', L', C)`` in and out (no ``channels_first`` switch: the stage cuts the
    NCHW map into windows of tokens, see :func:`~vision_ssm.layers.window_partition`).

    ``in_proj`` splits the tokens into an SSM branch ``x`` and a symmetric branch ``z`` of
    ``d_inner / 2`` channels each. Both go through a non-causal (``'same'``-padded) depthwise
    Conv1d and SiLU; ``x`` then goes through a single causal selective scan over the ``L'`` tokens
    (``d_state`` states), and the scan output is **concatenated** with ``z`` (no gating) before
    ``out_proj``.

    Upstream quirk (reproduced by default): ``dt_proj`` adds its bias and the same bias is passed
    again as the scan's ``delta_bias``, so ``Δ = softplus(W_dt·dt + 2·b_dt)``. Set
    ``double_dt_bias=False`` for the textbook ``softplus(W_dt·dt + b_dt)``; official checkpoints
    need the default.

    Args:
        d_model: Token channels ``C`` (mamba-ssm's name, as every mixer here; blocks call it ``dim``).
        d_state: SSM state size ``N``.
        d_conv: Depthwise Conv1d kernel size (``'same'`` padding).
        expand: ``d_inner = expand * d_model``; must be even.
        dt_rank: Rank of the Δ projection, ``'auto'`` = ``ceil(d_model / 16)``.
        dt_min: Smallest Δ of the ``dt_proj.bias`` initialisation.
        dt_max: Largest Δ of the ``dt_proj.bias`` initialisation.
        dt_init: ``'random'`` (uniform ``±dt_rank^-0.5·dt_scale``) or ``'constant'`` ``dt_proj.weight``.
        dt_scale: Scale of the ``dt_proj.weight`` initialisation.
        dt_init_floor: Floor of the initial Δ.
        bias: Bias on ``in_proj`` / ``out_proj`` (upstream: ``False``).
        conv_bias: Bias on the depthwise convs (upstream: ``False``; its ``conv_bias // 2`` is 0).
        double_dt_bias: Add ``dt_proj.bias`` a second time inside the scan (upstream behaviour).
        backend: Selective-scan backend handed to :func:`vision_ssm.ops.selective_scan` (``None``: automatic).
        **kwargs: ``dim=`` (deprecated spelling of ``d_model``), honoured with a ``FutureWarning``.
    """

    def __init__(
            self,
            d_model: int | None = None,
            d_state: int = 8,
            d_conv: int = 3,
            expand: float = 1,
            dt_rank: int | str = "auto",
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
            bias: bool = False,
            conv_bias: bool = False,
            double_dt_bias: bool = True,
            backend: str | None = None,
            **kwargs: Any,
    ) -> None:
        super().__init__()
        old = pop_deprecated(kwargs, {"dim": "d_model"}, "MambaVisionMixer")
        if kwargs:
            raise TypeError(f"MambaVisionMixer got unexpected keyword arguments {sorted(kwargs)}")
        dim = old["d_model"] if d_model is None and "d_model" in old else d_model
        if dim is None:
            raise TypeError("MambaVisionMixer needs d_model")
        check_int(dim, "d_model", "MambaVisionMixer")
        check_int(d_state, "d_state", "MambaVisionMixer")
        check_int(d_conv, "d_conv", "MambaVisionMixer")
        check_number(expand, "expand", "MambaVisionMixer", low=0.0, low_open=True)
        if dt_rank != "auto":
            check_int(dt_rank, "dt_rank", "MambaVisionMixer")
        self.d_model = dim
        self.d_state = d_state
        self.d_inner = int(expand * dim)
        if self.d_inner % 2:
            raise ValueError(f"MambaVisionMixer: d_inner = expand * d_model = {self.d_inner} must be even")
        half = self.d_inner // 2
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.double_dt_bias = double_dt_bias
        self.backend = backend

        self.in_proj = nn.Linear(dim, self.d_inner, bias=bias)
        self.x_proj = nn.Linear(half, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, half, bias=True)
        self.conv1d_x = nn.Conv1d(half, half, d_conv, padding="same", groups=half, bias=conv_bias)
        self.conv1d_z = nn.Conv1d(half, half, d_conv, padding="same", groups=half, bias=conv_bias)
        self.A_log = nn.Parameter(torch.empty(half, d_state))
        self.D = nn.Parameter(torch.empty(half))
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.reset_ssm_parameters(dt_min, dt_max, dt_init, dt_scale, dt_init_floor)

    @torch.no_grad()
    def reset_ssm_parameters(
            self,
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
    ) -> None:
        """Mamba initialisation of ``dt_proj``, ``A_log`` (``log(1..N)``) and ``D`` (ones).

        See :mod:`vision_ssm.layers.weight_init` (shared with SS2D).
        """
        init_dt_proj_(self.dt_proj.weight, self.dt_proj.bias, self.dt_rank, dt_min, dt_max, dt_init, dt_scale,
                      dt_init_floor)
        self.A_log.copy_(A_log_init(self.d_state, self.A_log.shape[0], self.A_log.device))
        self.D.copy_(D_init(self.D.shape[0], self.D.device))

    def forward(self, x: Tensor) -> Tensor:
        """Mix tokens.

        Args:
            x: Tokens ``(B', L', C)``, scanned in the given token order.

        Returns:
            ``(B', L', C)``; fp32 under float16 autocast (the scan and ``out_proj`` then run in fp32: their
            output can exceed float16's range).
        """
        check_input(x, "MambaVisionMixer", "NLC", self.d_model, self.in_proj.weight)
        xz = self.in_proj(x).transpose(1, 2)  # (B', d_inner, L')
        xs, z = xz.chunk(2, dim=1)
        xs = F.silu(self.conv1d_x(xs))  # (B', d_inner/2, L'), centred (non-causal) conv
        z = F.silu(self.conv1d_z(z))
        x_dbl = self.x_proj(xs.transpose(1, 2))  # (B', L', R + 2N)
        dt, b, c = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj(dt).transpose(1, 2).contiguous()  # (B', d_inner/2, L'), includes dt_proj.bias
        b = b.transpose(1, 2).contiguous()  # (B', N, L')
        c = c.transpose(1, 2).contiguous()
        a = -torch.exp(self.A_log.float())
        delta_bias = self.dt_proj.bias.float() if self.double_dt_bias else None
        fp32 = scan_in_fp32(xs, dt)  # float16: the scan's output can exceed its range (65504)
        if fp32:
            xs, dt, b, c, z = fp32_scan_inputs(xs, dt, b, c, z)
        y = selective_scan(
            xs.contiguous(), dt, a, b, c, self.D.float(),
            z=None, delta_bias=delta_bias, delta_softplus=True, backend=self.backend,
        )
        y = torch.cat([y, z], dim=1).transpose(1, 2)  # (B', L', d_inner): concat, not a gate
        return project_fp32(self.out_proj, y, x.dtype) if fp32 else self.out_proj(y)


class MambaVisionAttention(nn.Module):
    """Multi-head self-attention over the tokens of a window (timm ViT layout: ``qkv``, ``proj``).

    Args:
        dim: Token channels ``C``.
        num_heads: Heads; ``dim`` must be divisible by it.
        qkv_bias: Bias on the ``qkv`` projection.
        attn_drop: Attention-probability dropout (training only).
        proj_drop: Dropout after ``proj``.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        check_int(dim, "dim", "MambaVisionAttention")
        check_int(num_heads, "num_heads", "MambaVisionAttention")
        check_rate(attn_drop, "attn_drop", "MambaVisionAttention")
        check_rate(proj_drop, "proj_drop", "MambaVisionAttention")
        if dim % num_heads:
            raise ValueError(f"MambaVisionAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over tokens ``(B', L', C)``; returns ``(B', L', C)``."""
        check_input(x, "MambaVisionAttention", "NLC", self.dim, self.qkv.weight)
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B', heads, L', head_dim), scale head_dim^-0.5
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(B, L, C)
        return self.proj_drop(self.proj(x))

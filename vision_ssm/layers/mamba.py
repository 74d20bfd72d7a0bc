"""The 1-D Mamba mixer (Mamba v1), state-dict compatible with mamba-ssm's ``Mamba``.

Paper: "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", Gu & Dao, 2023,
https://arxiv.org/abs/2312.00752. Reference code: https://github.com/state-spaces/mamba
(``mamba_ssm/modules/mamba_simple.py``). This is a general sequence layer: any ``(B, L, C)`` token
sequence, scanned causally in the given order (MambaAlign's QSVSS block runs one per QuadSnake route).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import register_notrace_function
from torch import Tensor, nn

from ..ops import causal_conv1d, selective_scan
from ._precision import fp32_scan_inputs, project_fp32, scan_in_fp32
from ._validate import check_input, check_int, check_number
from .weight_init import A_log_init, D_init, init_dt_proj_

__all__ = ["Mamba"]

register_notrace_function(selective_scan)
register_notrace_function(causal_conv1d)


class Mamba(nn.Module):
    """Mamba v1 selective-SSM mixer on token sequences.

    Layout: tokens ``(B, L, C)`` in and out, scanned causally from ``l = 0`` to ``L-1``.

    ``in_proj`` (``C → 2·D``, ``D = expand·C``) splits into ``x`` and the gate ``z``;
    ``x = SiLU(causal depthwise conv1d(x))`` (:func:`vision_ssm.ops.causal_conv1d`, ``d_conv`` taps);
    ``x_proj`` gives per-token ``(dt, B, C)`` of sizes ``(R, N, N)``; ``Δ = softplus(dt_proj.weight·dt +
    dt_proj.bias)``; ``y = selective_scan(x, Δ, A = -exp(A_log), B, C, D, z = z)`` (that is
    ``(scan + D·x)·SiLU(z)``); ``out_proj`` maps ``D → C``.

    State-dict keys and shapes equal mamba-ssm's ``Mamba``: ``in_proj.weight`` ``(2D, C)``,
    ``conv1d.weight`` ``(D, 1, d_conv)``, ``conv1d.bias``, ``x_proj.weight`` ``(R + 2N, D)``,
    ``dt_proj.weight`` ``(D, R)``, ``dt_proj.bias``, ``A_log`` ``(D, N)``, ``D`` ``(D,)``,
    ``out_proj.weight`` ``(C, D)`` (plus ``in_proj.bias`` / ``out_proj.bias`` with ``bias=True``).
    Incremental decoding (mamba-ssm's ``inference_params``) is not provided.

    Args:
        d_model: Token channels ``C``.
        d_state: SSM state size ``N``.
        d_conv: Taps of the causal depthwise conv.
        expand: ``d_inner = int(expand * d_model)``.
        dt_rank: Rank ``R`` of the Δ projection; ``'auto'`` = ``ceil(d_model / 16)``.
        dt_min: Smallest Δ of the ``dt_proj.bias`` initialisation.
        dt_max: Largest Δ of the ``dt_proj.bias`` initialisation.
        dt_init: ``'random'`` or ``'constant'`` ``dt_proj.weight`` (see :func:`~vision_ssm.layers.init_dt_proj_`).
        dt_scale: Scale of the ``dt_proj.weight`` initialisation.
        dt_init_floor: Floor of the initial Δ.
        conv_bias: Bias on the depthwise conv (mamba-ssm: ``True``).
        bias: Bias on ``in_proj`` / ``out_proj`` (mamba-ssm: ``False``).
        layer_idx: Stored as ``self.layer_idx`` (mamba-ssm's name; unused here).
        backend: Selective-scan backend handed to :func:`vision_ssm.ops.selective_scan` (``None``: automatic).
        device: Factory device of the parameters.
        dtype: Factory dtype of the parameters (``A_log`` and ``D`` stay fp32, as in mamba-ssm).
        **kwargs: mamba-ssm's ``use_fast_path`` is accepted and ignored (the fast path here is the
            backend choice); anything else raises ``TypeError``.
    """

    def __init__(
            self,
            d_model: int,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank: int | str = "auto",
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
            conv_bias: bool = True,
            bias: bool = False,
            layer_idx: int | None = None,
            backend: str | None = None,
            device: torch.device | str | None = None,
            dtype: torch.dtype | None = None,
            **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("use_fast_path", None)
        if kwargs:
            raise TypeError(f"Mamba got unexpected keyword arguments {sorted(kwargs)}")
        check_int(d_model, "d_model", "Mamba")
        check_int(d_state, "d_state", "Mamba")
        check_int(d_conv, "d_conv", "Mamba")
        check_number(expand, "expand", "Mamba", low=0.0, low_open=True)
        if int(expand * d_model) < 1:
            raise ValueError(f"Mamba: expand * d_model must give an inner width >= 1, got {expand} * {d_model}")
        if dt_rank != "auto":
            check_int(dt_rank, "dt_rank", "Mamba")
        fk = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.layer_idx = layer_idx
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **fk)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias, **fk)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **fk)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **fk)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dt_proj.bias._no_reinit = True  # mamba-ssm's flag: model-level inits keep the Δ bias
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
        """Mamba initialisation of ``dt_proj`` (Δ in ``[dt_min, dt_max]``), ``A_log = log(1..N)`` and ``D = 1``."""
        init_dt_proj_(self.dt_proj.weight, self.dt_proj.bias, self.dt_rank, dt_min, dt_max, dt_init, dt_scale,
                      dt_init_floor)
        self.A_log.copy_(A_log_init(self.d_state, self.d_inner, self.A_log.device))
        self.D.copy_(D_init(self.d_inner, self.D.device))

    def scan_inputs(self, hidden_states: Tensor) -> tuple[Tensor, ...]:
        """Everything before the scan: the arguments of :func:`~vision_ssm.ops.selective_scan`.

        Blocks that run several mixers side by side (the QSVSS routes) concatenate these along the
        channels and scan once; :meth:`forward` is ``out_proj(selective_scan(*scan_inputs(x)))``.

        Args:
            hidden_states: ``(B, L, C)``.

        Returns:
            ``(u, delta, A, B, C, D, z, delta_bias)``: ``u``, ``delta``, ``z`` ``(B, D, L)``; ``A`` ``(D, N)``;
            ``B``, ``C`` ``(B, N, L)``; ``D``, ``delta_bias`` ``(D,)`` (the scan takes ``delta_softplus=True``).
        """
        check_input(hidden_states, "Mamba", "NLC", self.d_model, self.in_proj.weight, name="hidden_states")
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2D, L)
        x, z = xz.chunk(2, dim=1)
        x = causal_conv1d(x, self.conv1d.weight[:, 0], self.conv1d.bias, activation="silu")  # (B, D, L)
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, b, c = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.T).transpose(1, 2).contiguous()  # (B, D, L); bias added by the scan
        b = b.transpose(1, 2).contiguous()  # (B, N, L)
        c = c.transpose(1, 2).contiguous()
        A = -torch.exp(self.A_log.float())
        return x.contiguous(), dt, A, b, c, self.D.float(), z.contiguous(), self.dt_proj.bias.float()

    def forward(self, hidden_states: Tensor) -> Tensor:
        """Mix a token sequence.

        Args:
            hidden_states: ``(B, L, C)``.

        Returns:
            ``(B, L, C)``; fp32 under float16 autocast (the scan and ``out_proj`` then run in fp32: their
            output can exceed float16's range).
        """
        u, dt, A, b, c, D, z, bias = self.scan_inputs(hidden_states)
        fp32 = scan_in_fp32(u, dt)  # float16: the scan's output can exceed its range (65504)
        if fp32:
            u, dt, b, c, z = fp32_scan_inputs(u, dt, b, c, z)
        y = selective_scan(u, dt, A, b, c, D, z=z, delta_bias=bias, delta_softplus=True, backend=self.backend)
        y = y.transpose(1, 2)
        return project_fp32(self.out_proj, y, hidden_states.dtype) if fp32 else self.out_proj(y)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, d_inner={self.d_inner}, "
                f"dt_rank={self.dt_rank}, backend={self.backend!r}")

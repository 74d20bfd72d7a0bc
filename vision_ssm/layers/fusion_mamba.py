"""Fusion-Mamba's fusion blocks (arXiv 2404.09146; IEEE TMM 2025): SSCS, DSSF, the DSSF stack and FMB.

Upstream: ``EhanDong/Fusion-Mamba: models/common.py`` (``chnnel_swapping_Vmamba``, ``Cross_Block`` +
``Cross_modal_Vmaba_module``, ``CrossLayer``, ``Add2``/``Add``). For one pyramid level, with ``F_R`` the RGB
and ``F_IR`` the infrared feature map of ``C`` channels:

- **SSCS** (Eqs. 5–6): :func:`channel_swap` interleaves the channel quarters of both modalities, then one
  VSS block per branch (``x + DropPath(SS2D(LN(x)))``, VMamba's v0 block, 4-direction cross-scan).
- **DSSF** (Eqs. 7–11): per modality ``(x, z) = in_proj(LN(F̃))``, ``y = out_norm(SS2D-core(SiLU(DWConv(x))))``;
  the gated cross terms ``y′_R = y_R·z_R + z_R·y_IR`` and ``y′_IR = y_IR·z_IR + z_IR·y_R`` (``z = SiLU(z)``),
  then ``F̄ = F̃ + out_proj(y′)``.
- **DSSF stack**: 8 DSSF blocks.
- **FMB** (Eq. 12): ``F̂_R = F_R + F̄_R``, ``F̂_IR = F_IR + F̄_IR`` and the fused map ``P = F̂_R + F̂_IR``.

The official code differs from the paper in three places (``blocks.md`` §6.5). The default here is the
paper; ``official=True`` reproduces the official code with its exact state-dict keys:

=========================  ==============================================  ===========================================
behaviour                  paper (default)                                 ``official=True``
=========================  ==============================================  ===========================================
SSM core of the DSSF       one per modality (``x_proj_weight1``/``2``, …)  one, shared (``x_proj_weight``, …)
Eq. 10                     ``y′_IR`` from the original ``y_R``             from the updated ``y′_R``
DSSF stack                 chained: block ``j`` feeds block ``j+1``        not chained: ``blocks[-1](input)``
=========================  ==============================================  ===========================================

Every SSM runs :func:`vision_ssm.layers.ss2d.ss2d_core` (any selective-scan backend, ``backend=``); no
tensor is moved to a device by these modules.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from timm.layers import DropPath, register_notrace_module
from torch import Tensor, nn

from ..ops import DirectionSet, resolve_directions
from ._options import merge_ssm_cfg
from ._precision import run_fp32
from .hss import HSSBlock
from .norm import NormLayer, get_norm
from .ss2d import SS2D, _direction_source, _resolve_act, init_ss2d_core_, ss2d_core

__all__ = ["DSSF", "FMB", "FUSION_MAMBA_SSM_DEFAULTS", "SSCS", "CrossModalSS2D", "DSSFStack", "channel_swap"]

#: Fusion-Mamba's SS2D scan: VMamba's 4-direction cross-scan (raster, column-major and their reversals).
FUSION_MAMBA_SSM_DEFAULTS: dict[str, Any] = {"scan": "sweep", "directions": 4}

#: The SSM-core parameters of one SS2D (``blocks.md`` §6.3); in paper mode each exists twice, suffixed 1 / 2.
_CORE = ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds")


def channel_swap(x_a: Tensor, x_b: Tensor, dim: int = 1) -> Tensor:
    """Eq. 5, ``CS(a, b)``: the channel quarters ``[a1 | b2 | a3 | b4]`` of two maps of equal shape.

    ``T_R = channel_swap(F_R, F_IR)`` and ``T_IR = channel_swap(F_IR, F_R)``. Exact (a copy of the inputs'
    values, no arithmetic).

    Args:
        x_a: Map whose quarters 1 and 3 are kept, any layout, e.g. ``(B, C, H, W)``.
        x_b: Map whose quarters 2 and 4 are taken, same shape as ``x_a``.
        dim: Channel dimension (``1`` for ``(B, C, H, W)``, ``-1`` for ``(B, H, W, C)``).

    Raises:
        ValueError: Different shapes, or channels not divisible by 4.
    """
    if x_a.shape != x_b.shape:
        raise ValueError(f"channel_swap: shapes differ, {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    if x_a.shape[dim] % 4:
        raise ValueError(f"channel_swap: {x_a.shape[dim]} channels are not divisible by 4")
    a, b = x_a.chunk(4, dim), x_b.chunk(4, dim)
    return torch.cat([a[0], b[1], a[2], b[3]], dim)


def _ssm_cfg(ssm_cfg: Mapping[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    return merge_ssm_cfg(ssm_cfg, FUSION_MAMBA_SSM_DEFAULTS, **overrides)


def _to_nhwc(x: Tensor, channels_first: bool) -> Tensor:
    return x.permute(0, 2, 3, 1) if channels_first else x


def _from_nhwc(x: Tensor, channels_first: bool) -> Tensor:
    return x.permute(0, 3, 1, 2) if channels_first else x


class SSCS(nn.Module):
    """Shallow fusion: channel swapping (Eq. 5) then one VSS block per branch (Eq. 6).

    ``T_R = [R1|I2|R3|I4]``, ``T_IR = [I1|R2|I3|R4]``; ``F̃_R = blocks1(T_R)``, ``F̃_IR = blocks2(T_IR)`` (the two
    branches do not share weights; there is no residual to the unswapped inputs). Each block is VMamba's v0
    VSS block ``x + DropPath(SS2D(LN(x)))`` (:class:`~vision_ssm.layers.HSSBlock` with the cross-scan of
    :data:`FUSION_MAMBA_SSM_DEFAULTS`). Paper and official code agree here.

    Layout: ``(B, C, H, W)`` in and out (``channels_first=True``, the official layer boundary) or
    ``(B, H, W, C)``; ``C`` divisible by 4.

    State-dict keys (official): ``blocks{1,2}.{j}.ln_1.*``, ``blocks{1,2}.{j}.self_attention.*`` (SS2D:
    ``in_proj.weight`` ``(4C, C)``, ``conv2d.*``, ``x_proj_weight`` ``(4, R+2N, 2C)``, ``dt_projs_weight``,
    ``dt_projs_bias``, ``A_logs`` ``(8C, N)``, ``Ds``, ``out_norm.*``, ``out_proj.weight`` ``(C, 2C)``).

    Args:
        dim: Channels ``C``.
        depth: VSS blocks per branch (official: 1).
        drop_path: Stochastic-depth rate, one for all blocks or one per block.
        norm_layer: Pre-norm of each VSS block, a name or a class (channels-last; ``nn.LayerNorm``, eps 1e-5).
        ssm_cfg: :class:`~vision_ssm.layers.SS2D` keyword arguments (defaults: ``d_state=16``,
            ``ssm_ratio=2``, ``d_conv=3``, ``dt_rank=ceil(C/16)``, ``scan="sweep"``, ``directions=4``).
        d_state: Override of ``ssm_cfg["d_state"]``.
        scan: Override of ``ssm_cfg["scan"]``.
        directions: Override of ``ssm_cfg["directions"]``.
        backend: Selective-scan backend (``None``: ``ssm_cfg``'s, else automatic).
        channels_first: Layout of inputs and outputs.
    """

    def __init__(
            self,
            dim: int,
            depth: int = 1,
            drop_path: float | Sequence[float] = 0.0,
            norm_layer: NormLayer = nn.LayerNorm,
            *,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            scan: Any = None,
            directions: Any = None,
            backend: str | None = None,
            channels_first: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        if dim % 4:
            raise ValueError(f"SSCS: dim={dim} must be divisible by 4 (Eq. 5 swaps channel quarters)")
        cfg = _ssm_cfg(ssm_cfg, d_state=d_state, scan=scan, directions=directions, backend=backend)
        dpr = [drop_path] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        self.dim = dim
        self.channels_first = channels_first

        def branch() -> nn.Sequential:
            return nn.Sequential(*[HSSBlock(dim, dpr[j], norm_layer=norm_layer, ssm_cfg=cfg, device=device,
                                            dtype=dtype) for j in range(depth)])

        self.blocks1 = branch()
        self.blocks2 = branch()

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[Tensor, Tensor]:
        """``(F_R, F_IR)`` → ``(F̃_R, F̃_IR)``, each ``(B, C, H, W)`` (or ``(B, H, W, C)``)."""
        cf = self.channels_first
        x_rgb, x_ir = _to_nhwc(x_rgb, cf), _to_nhwc(x_ir, cf)
        t_rgb, t_ir = channel_swap(x_rgb, x_ir, -1), channel_swap(x_ir, x_rgb, -1)
        return _from_nhwc(self.blocks1(t_rgb), cf), _from_nhwc(self.blocks2(t_ir), cf)


class CrossModalSS2D(nn.Module):
    """The DSSF mixer (official ``Cross_modal_Vmaba_module``): two SS2D branches with gated cross terms.

    Inputs and outputs are channels-last ``(B, H, W, C)``, the two modalities already normalised. Per
    modality ``i`` (1 = RGB, 2 = IR): ``(x_i, z_i) = in_proj_i(d_i).chunk(2)``, ``x_i = act(conv2d_i(x_i))``,
    ``y_i = out_norm_i(core(x_i))`` (the K-direction scan of :func:`~vision_ssm.layers.ss2d.ss2d_core`), then

    - Eq. 9: ``y′_1 = y_1·act(z_1) + y_2·act(z_1)``;
    - Eq. 10: ``y′_2 = y_src·act(z_2) + y_2·act(z_2)`` with ``y_src = y_1`` (paper) or ``y′_1``
      (``cross_from_updated``, official);
    - ``out_i = dropout(out_proj_i(y′_i))``.

    Keys: ``in_proj{1,2}.weight`` ``(2D, C)``, ``conv2d{1,2}.*`` ``(D, 1, k, k)``, ``out_norm{1,2}.*`` ``(D,)``,
    ``out_proj{1,2}.weight`` ``(C, D)`` and the SSM core ``x_proj_weight`` ``(K, R+2N, D)``,
    ``dt_projs_weight`` ``(K, D, R)``, ``dt_projs_bias`` ``(K, D)``, ``A_logs`` ``(K·D, N)``, ``Ds`` ``(K·D,)``:
    once when ``share_ssm`` (official), else twice with suffixes ``1`` and ``2``.

    Args:
        d_model: Channels ``C``.
        d_state: SSM state size ``N``.
        ssm_ratio: Inner width ``D = int(ssm_ratio·C)``.
        dt_rank: ``R``; ``"auto"`` = ``ceil(C/16)``.
        d_conv: Depthwise conv kernel size.
        conv_bias: Bias in the depthwise convs.
        bias: Bias in ``in_proj``/``out_proj``.
        act_layer: Activation after the conv and on the gates (SiLU).
        out_norm_eps: Epsilon of the LayerNorm out-norms.
        scan: Scan family or direction set (as :class:`~vision_ssm.layers.SS2D`; default VMamba's cross-scan).
        directions: Number of directions ``K``.
        force_fp32: Cast the scan inputs to fp32 (float16 ones are cast either way; see :func:`ss2d_core`).
        dropout: Dropout after ``out_proj``.
        share_ssm: One SSM core for both modalities (official) instead of one per modality (paper).
        cross_from_updated: Eq. 10 from the updated ``y′_1`` (official) instead of ``y_1`` (paper).
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init: ``"random"`` or ``"constant"`` init of ``dt_projs_weight``.
        dt_scale: Scale of the ``dt_projs_weight`` init.
        dt_init_floor: Floor of the initial step size.
        backend: Selective-scan backend (``None``: automatic).
    """

    def __init__(
            self,
            d_model: int,
            d_state: int = 16,
            ssm_ratio: float = 2.0,
            dt_rank: int | str = "auto",
            d_conv: int = 3,
            conv_bias: bool = True,
            bias: bool = False,
            act_layer: str | Callable[[], nn.Module] = nn.SiLU,
            out_norm_eps: float = 1e-5,
            scan: Any = "sweep",
            directions: Any = None,
            force_fp32: bool = True,
            dropout: float = 0.0,
            share_ssm: bool = False,
            cross_from_updated: bool = False,
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
            backend: str | None = None,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = N = d_state
        self.d_inner = D = int(ssm_ratio * d_model)
        self.dt_rank = R = -(-d_model // 16) if dt_rank == "auto" else int(dt_rank)
        self.share_ssm = share_ssm
        self.cross_from_updated = cross_from_updated
        self.force_fp32 = force_fp32
        self.backend = backend
        self._dirs = _direction_source(scan, directions)
        self.directions = K = self._dirs.K if isinstance(self._dirs, DirectionSet) else self._dirs.num_directions
        self.act = _resolve_act(act_layer)
        for i in (1, 2):
            setattr(self, f"in_proj{i}", nn.Linear(d_model, 2 * D, bias=bias, **dd))
            setattr(self, f"conv2d{i}", nn.Conv2d(D, D, d_conv, padding=(d_conv - 1) // 2, groups=D,
                                                  bias=conv_bias, **dd) if d_conv > 1 else nn.Identity())
        for s in self._suffixes():
            fp32 = {"device": device, "dtype": torch.float32}
            self.register_parameter(f"x_proj_weight{s}", nn.Parameter(torch.empty(K, R + 2 * N, D, **dd)))
            self.register_parameter(f"dt_projs_weight{s}", nn.Parameter(torch.empty(K, D, R, **dd)))
            self.register_parameter(f"dt_projs_bias{s}", nn.Parameter(torch.empty(K, D, **dd)))
            self.register_parameter(f"A_logs{s}", nn.Parameter(torch.empty(K * D, N, **fp32)))
            self.register_parameter(f"Ds{s}", nn.Parameter(torch.empty(K * D, **fp32)))
            getattr(self, f"A_logs{s}")._no_weight_decay = True
            getattr(self, f"Ds{s}")._no_weight_decay = True
        for i in (1, 2):
            setattr(self, f"out_norm{i}", nn.LayerNorm(D, eps=out_norm_eps, **dd))
            setattr(self, f"out_proj{i}", nn.Linear(D, d_model, bias=bias, **dd))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._dt_init = dict(dt_min=dt_min, dt_max=dt_max, dt_init=dt_init, dt_scale=dt_scale,
                             dt_init_floor=dt_init_floor)
        self.reset_ssm_parameters()

    def _suffixes(self) -> tuple[str, ...]:
        return ("",) if self.share_ssm else ("1", "2")

    def ssm_core(self, i: int) -> tuple[Tensor, ...]:
        """The SSM-core parameters modality ``i`` (1 or 2) scans with, in :func:`ss2d_core`'s order."""
        s = "" if self.share_ssm else str(i)
        return tuple(getattr(self, name + s) for name in _CORE)

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Upstream ``mamba_init`` of every SSM core (:func:`~vision_ssm.layers.ss2d.init_ss2d_core_`)."""
        for i in range(1, len(self._suffixes()) + 1):
            init_ss2d_core_(*self.ssm_core(i), **self._dt_init)

    def _branch(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 7 for modality ``i``: ``(y_i, act(z_i))``, both ``(B, H, W, D)``."""
        x, z = getattr(self, f"in_proj{i}")(x).chunk(2, dim=-1)
        x = x.permute(0, 3, 1, 2)
        x = self.act(getattr(self, f"conv2d{i}")(x.contiguous(memory_format=SS2D._core_memory_format(x))))
        dirs = resolve_directions(self._dirs, x.shape[2], x.shape[3], device=x.device)
        y = ss2d_core(x, *self.ssm_core(i), dirs, force_fp32=self.force_fp32, backend=self.backend)
        norm, y = getattr(self, f"out_norm{i}"), y.permute(0, 2, 3, 1)
        y = (run_fp32(norm, y) if y.dtype != z.dtype else norm(y)).to(z.dtype)  # an fp32 scan output: fp32 norm
        return y, self.act(z)

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[Tensor, Tensor]:
        """``(d_R, d_IR)`` → ``(out_R, out_IR)``, each ``(B, H, W, C)``."""
        y1, g1 = self._branch(1, x_rgb)
        y2, g2 = self._branch(2, x_ir)
        y1p = y1 * g1 + y2 * g1  # Eq. 9
        out1 = self.dropout(self.out_proj1(y1p))
        y2p = (y1p if self.cross_from_updated else y1) * g2 + y2 * g2  # Eq. 10
        out2 = self.dropout(self.out_proj2(y2p))
        return out1, out2

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"directions={self.directions}, share_ssm={self.share_ssm}, "
                f"cross_from_updated={self.cross_from_updated}")


class DSSF(nn.Module):
    """One DSSF block (official ``Cross_Block``): Eqs. 7–11 on channels-last maps.

    ``(o_R, o_IR) = CrossModalSS2D(LN_1(F̃_R), LN_2(F̃_IR))``; ``F̄_R = F̃_R + DropPath(o_R)``,
    ``F̄_IR = F̃_IR + DropPath(o_IR)``. Layout ``(B, H, W, C)`` in and out.

    Keys: ``ln_1.*``, ``ln_2.*`` ``(C,)`` and ``self_attention.*`` (:class:`CrossModalSS2D`).

    Args:
        dim: Channels ``C``.
        drop_path: Stochastic-depth rate of both residual branches.
        norm_layer: The two pre-norms, a name or a class (channels-last; ``nn.LayerNorm``, eps 1e-5).
        official: The official block: shared SSM core and Eq. 10 from the updated ``y′_R``.
        share_ssm: Override of the core sharing (``None``: shared iff ``official``).
        ssm_cfg: :class:`CrossModalSS2D` keyword arguments (SS2D's names: ``d_state``, ``ssm_ratio``, ...).
        d_state: Override of ``ssm_cfg["d_state"]``.
        scan: Override of ``ssm_cfg["scan"]``.
        directions: Override of ``ssm_cfg["directions"]``.
        backend: Selective-scan backend (``None``: ``ssm_cfg``'s, else automatic).
    """

    def __init__(
            self,
            dim: int,
            drop_path: float = 0.0,
            norm_layer: NormLayer = nn.LayerNorm,
            *,
            official: bool = False,
            share_ssm: bool | None = None,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            scan: Any = None,
            directions: Any = None,
            backend: str | None = None,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        cfg = _ssm_cfg(ssm_cfg, d_state=d_state, scan=scan, directions=directions, backend=backend)
        norm, _ = get_norm(norm_layer, channels_first=False)
        self.dim = dim
        self.official = official
        self.ln_1 = norm(dim, **dd)
        self.ln_2 = norm(dim, **dd)
        self.self_attention = CrossModalSS2D(
            dim, share_ssm=official if share_ssm is None else share_ssm, cross_from_updated=official, **cfg, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[Tensor, Tensor]:
        """``(F̃_R, F̃_IR)`` → ``(F̄_R, F̄_IR)``, each ``(B, H, W, C)``."""
        o_rgb, o_ir = self.self_attention(self.ln_1(x_rgb), self.ln_2(x_ir))
        return x_rgb + self.drop_path(o_rgb), x_ir + self.drop_path(o_ir)


class DSSFStack(nn.Module):
    """``depth`` DSSF blocks (official ``CrossLayer``), chained (paper) or not (official).

    - ``chain=True`` (paper, Eq. 11 stacked): ``F̄ ← block_j(F̄)`` for ``j = 0 … depth-1``.
    - ``chain=False`` (official): every block would see the stack's input and only the last result is kept,
      so the output is ``blocks[-1](input)``; blocks ``0 … depth-2`` are not run (their outputs would be
      discarded) and get no gradient, exactly as in the official model.

    Layout: ``(B, C, H, W)`` in and out (``channels_first=True``, the official layer boundary) or
    ``(B, H, W, C)``. Keys: ``blocks.{j}.*`` (:class:`DSSF`).

    Args:
        dim: Channels ``C``.
        depth: Number of DSSF blocks (paper and official: 8).
        drop_path: Stochastic-depth rate, one for all blocks or one per block.
        norm_layer: Pre-norms of the blocks.
        official: Official blocks (shared core, Eq. 10 from ``y′_R``) and the non-chaining stack.
        chain: Override of the chaining (``None``: ``not official``).
        share_ssm: Override of the core sharing (``None``: ``official``).
        ssm_cfg: :class:`CrossModalSS2D` keyword arguments.
        d_state: Override of ``ssm_cfg["d_state"]``.
        scan: Override of ``ssm_cfg["scan"]``.
        directions: Override of ``ssm_cfg["directions"]``.
        backend: Selective-scan backend.
        channels_first: Layout of inputs and outputs.
    """

    def __init__(
            self,
            dim: int,
            depth: int = 8,
            drop_path: float | Sequence[float] = 0.0,
            norm_layer: NormLayer = nn.LayerNorm,
            *,
            official: bool = False,
            chain: bool | None = None,
            share_ssm: bool | None = None,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            scan: Any = None,
            directions: Any = None,
            backend: str | None = None,
            channels_first: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dpr = [drop_path] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        self.dim = dim
        self.official = official
        self.chain = (not official) if chain is None else chain
        self.channels_first = channels_first
        self.blocks = nn.ModuleList([
            DSSF(dim, dpr[j], norm_layer, official=official, share_ssm=share_ssm, ssm_cfg=ssm_cfg, d_state=d_state,
                 scan=scan, directions=directions, backend=backend, device=device, dtype=dtype)
            for j in range(depth)
        ])

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[Tensor, Tensor]:
        """``(F̃_R, F̃_IR)`` → ``(F̄_R, F̄_IR)``, each ``(B, C, H, W)`` (or ``(B, H, W, C)``)."""
        cf = self.channels_first
        x_rgb, x_ir = _to_nhwc(x_rgb, cf), _to_nhwc(x_ir, cf)
        if self.chain:
            for blk in self.blocks:
                x_rgb, x_ir = blk(x_rgb, x_ir)
        else:
            x_rgb, x_ir = self.blocks[-1](x_rgb, x_ir)
        return _from_nhwc(x_rgb, cf), _from_nhwc(x_ir, cf)


class FMB(nn.Module):
    """Fusion-Mamba block: SSCS → DSSF stack → Eq. 12, for one pyramid level.

    ``(F̃_R, F̃_IR) = SSCS(F_R, F_IR)``; ``(F̄_R, F̄_IR) = DSSFStack(F̃_R, F̃_IR)``; ``F̂_R = F_R + F̄_R``,
    ``F̂_IR = F_IR + F̄_IR`` (each feeds the next backbone stage of its own stream) and ``P = F̂_R + F̂_IR``
    (the fused map for the neck). Upstream this is four yaml layers (``chnnel_swapping_Vmamba``,
    ``CrossLayer``, ``Add2`` ×2, ``Add``); here one module with keys ``sscs.*`` (:class:`SSCS`) and
    ``dssf.*`` (:class:`DSSFStack`).

    Layout: ``(B, C, H, W)`` in and out (``channels_first=True``) or ``(B, H, W, C)``; ``C`` divisible by 4.

    Args:
        dim: Channels ``C``.
        depth: DSSF blocks (8).
        sscs_depth: VSS blocks per SSCS branch (1).
        drop_path: Stochastic-depth rate of the DSSF blocks (one, or one per block).
        norm_layer: Pre-norms of every block (channels-last; ``nn.LayerNorm``, eps 1e-5).
        official: The official code: shared DSSF core, Eq. 10 from ``y′_R``, non-chaining stack.
        chain: Override of the stack's chaining (``None``: ``not official``).
        share_ssm: Override of the DSSF core sharing (``None``: ``official``).
        ssm_cfg: SS2D keyword arguments for every SSM of the block.
        d_state: Override of ``ssm_cfg["d_state"]``.
        scan: Override of ``ssm_cfg["scan"]``.
        directions: Override of ``ssm_cfg["directions"]``.
        backend: Selective-scan backend.
        channels_first: Layout of inputs and outputs.
    """

    def __init__(
            self,
            dim: int,
            depth: int = 8,
            sscs_depth: int = 1,
            drop_path: float | Sequence[float] = 0.0,
            norm_layer: NormLayer = nn.LayerNorm,
            *,
            official: bool = False,
            chain: bool | None = None,
            share_ssm: bool | None = None,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            scan: Any = None,
            directions: Any = None,
            backend: str | None = None,
            channels_first: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        opts = dict(ssm_cfg=ssm_cfg, d_state=d_state, scan=scan, directions=directions, backend=backend,
                    channels_first=False, device=device, dtype=dtype)
        self.dim = dim
        self.official = official
        self.channels_first = channels_first
        self.sscs = SSCS(dim, sscs_depth, 0.0, norm_layer, **opts)
        self.dssf = DSSFStack(dim, depth, drop_path, norm_layer, official=official, chain=chain,
                              share_ssm=share_ssm, **opts)

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(F_R, F_IR)`` → ``(F̂_R, F̂_IR, P)``, each ``(B, C, H, W)`` (or ``(B, H, W, C)``)."""
        cf = self.channels_first
        x_rgb, x_ir = _to_nhwc(x_rgb, cf), _to_nhwc(x_ir, cf)
        f_rgb, f_ir = self.dssf(*self.sscs(x_rgb, x_ir))
        x_rgb, x_ir = x_rgb + f_rgb, x_ir + f_ir  # Eq. 12
        fused = x_rgb + x_ir
        return _from_nhwc(x_rgb, cf), _from_nhwc(x_ir, cf), _from_nhwc(fused, cf)


# FX: the scan walks data-dependent direction tables (as SS2D).
register_notrace_module(CrossModalSS2D)

"""MambaAlign blocks: QSVSS / PMM (QuadSnake selective-scan blocks per modality), CMI (cross-modal SSM), AAF.

Upstream: https://github.com/hoangcuongbk80/MambaAlign (no paper, no weights; the committed code cannot be
built). These blocks follow the intended design (``docs/layers/mambaalign.md``) with every defect of the
upstream code designed properly: the four route SSMs are registered modules and real selective SSMs
(:class:`~vision_ssm.layers.Mamba` by default), the QuadSnake orders come from
:func:`vision_ssm.ops.get_directions`, the CMI recurrence is one :func:`vision_ssm.ops.selective_scan`
call, every LayerNorm is per pixel over the channels, and AAF projects its residual when the channel
counts differ.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..ops import causal_conv1d, get_directions, route, scatter_directions, selective_scan
from ._options import merge_ssm_cfg
from ._precision import autocast_on, fp32_scan_inputs, project_fp32, run_fp32, scan_in_fp32
from .mamba import Mamba
from .norm import NormLayer, get_norm

__all__ = [
    "AAFBlock", "AlignmentAwareFusion", "CausalConvMixer", "CrossMambaInteraction", "PerModalMamba", "QSVSSBlock",
]

NUM_ROUTES = 4  # QuadSnake: row serpentine, its reversal, anti-diagonal serpentine, its reversal


class CausalConvMixer(nn.Module):
    """A causal depthwise convolution over tokens: upstream's fallback route operator, named as what it is.

    Layout: ``(B, L, C) → (B, L, C)``. Not a state-space model; pass ``ssm_factory=CausalConvMixer`` to
    :class:`QSVSSBlock` to reproduce upstream's behaviour (kernel 9, kaiming-normal init, bias).

    Args:
        d_model: Channels ``C``.
        kernel_size: Taps; output ``l`` sees inputs ``l-k+1 .. l``.
    """

    def __init__(self, d_model: int, kernel_size: int = 9) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=True)
        nn.init.kaiming_normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, L, C) → (B, L, C)``."""
        return causal_conv1d(x.transpose(1, 2), self.conv.weight[:, 0], self.conv.bias).transpose(1, 2)


class QSVSSBlock(nn.Module):
    """QuadSnake visual selective-scan block (MambaAlign's QSVSS), channels-first.

    Layout: ``(B, C, H, W) → (B, C, H, W)``, any ``H×W``; ``C`` divisible by 4.

    ``u = SiLU(dw(proj1(LN(x))))`` has ``C/4`` channels. Each of the four QuadSnake routes
    (``get_directions("quadsnake", H, W, 4)``: row serpentine, its reversal, anti-diagonal serpentine,
    its reversal) reads the same ``u`` as a sequence ``(B, H·W, C/4)``, runs **its own** sequence mixer
    (registered in ``self.ssms``), and is put back in raster order; the four results are concatenated
    (``C`` channels) and projected by ``proj_back``. Then ``x = x + proj_back(...)`` and
    ``x = x + ffn(x)`` with ``ffn = LN → 1×1 (C→mlp_ratio·C) → SiLU → 1×1 (→C)``. The default mixers
    (four :class:`~vision_ssm.layers.Mamba` with equal settings) share one scan call (:attr:`fused_scan`).

    Args:
        dim: Channels ``C``.
        ssm_cfg: Keyword arguments of the default route mixer :class:`~vision_ssm.layers.Mamba`
            (``d_state``, ``d_conv``, ``expand``, ``dt_rank``, ...).
        d_state: Override of ``ssm_cfg["d_state"]`` (``None``: not given).
        backend: Selective-scan backend of the default mixers (``None``: automatic).
        ssm_factory: ``factory(channels) -> nn.Module`` mapping ``(B, L, channels) → (B, L, channels)``,
            called once per route instead of the default; e.g. :class:`CausalConvMixer`. Exclusive with
            ``ssm_cfg`` / ``d_state`` / ``backend``.
        norm_layer: Per-pixel channel norm of steps 1 and 5 (a name or class, see
            :func:`~vision_ssm.layers.get_norm`; it must be channels-first: ``"ln2d"``, ``"bn"``, ...).
        use_ln: Apply the input norm (step 1).
        dw_kernel: Kernel of the depthwise conv (odd).
        mlp_ratio: FFN hidden channels per input channel.
        sequential_routes: Route, mix and un-route one route at a time (lower peak memory; same result).
        drop_path: Stochastic-depth rate of both residual branches.

    Raises:
        ValueError: ``dim`` not divisible by 4, an even ``dw_kernel``, options given with ``ssm_factory``.
        TypeError: ``ssm_factory`` does not return an ``nn.Module``.
    """

    def __init__(
            self,
            dim: int,
            ssm_cfg: dict[str, Any] | None = None,
            d_state: int | None = None,
            backend: str | None = None,
            ssm_factory: Callable[[int], nn.Module] | None = None,
            norm_layer: NormLayer = "ln2d",
            use_ln: bool = True,
            dw_kernel: int = 3,
            mlp_ratio: float = 4.0,
            sequential_routes: bool = False,
            drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % NUM_ROUTES:
            raise ValueError(f"QSVSSBlock: dim {dim} must be divisible by {NUM_ROUTES} (one quarter per route)")
        if dw_kernel % 2 == 0:
            raise ValueError(f"QSVSSBlock: dw_kernel must be odd, got {dw_kernel}")
        self.dim = dim
        self.route_dim = rc = dim // NUM_ROUTES
        self.sequential_routes = sequential_routes
        norm, _ = get_norm(norm_layer, channels_first=True)
        if ssm_factory is None:
            self.ssm_cfg = merge_ssm_cfg(ssm_cfg, None, d_state=d_state, backend=backend)
            ssm_factory = self._default_factory
        else:
            if ssm_cfg or d_state is not None or backend is not None:
                raise ValueError("QSVSSBlock: ssm_cfg / d_state / backend configure the default Mamba mixer; "
                                 "they cannot be combined with ssm_factory")
            self.ssm_cfg = {}

        self.norm = norm(dim) if use_ln else nn.Identity()
        self.proj1 = nn.Conv2d(dim, rc, 1)
        self.dw = nn.Conv2d(rc, rc, dw_kernel, padding=dw_kernel // 2, groups=rc)
        ssms = [ssm_factory(rc) for _ in range(NUM_ROUTES)]
        for m in ssms:
            if not isinstance(m, nn.Module):
                raise TypeError(f"QSVSSBlock: ssm_factory must return an nn.Module, got {type(m).__name__}")
        self.ssms = nn.ModuleList(ssms)
        self.proj_back = nn.Conv2d(rc * NUM_ROUTES, dim, 1)
        hidden = int(round(mlp_ratio * dim))
        self.ffn = nn.Sequential(norm(dim), nn.Conv2d(dim, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, dim, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _default_factory(self, channels: int) -> nn.Module:
        return Mamba(channels, **self.ssm_cfg)

    @property
    def fused_scan(self) -> bool:
        """Whether the four route mixers share one scan call: all :class:`~vision_ssm.layers.Mamba` with the
        same ``d_inner``, ``d_state`` and ``backend`` (each keeps its own parameters)."""
        ms = list(self.ssms)
        return all(type(m) is Mamba for m in ms) and len({(m.d_inner, m.d_state, m.backend) for m in ms}) == 1

    def _mix_fused(self, seqs: Tensor) -> Tensor:
        """The four Mamba route mixers with one selective scan: their channels concatenated (route ``k`` owns
        channels ``[k·D, (k+1)·D)``) and their per-token ``B``/``C`` as the scan's four groups.

        Args:
            seqs: ``(B, 4, C/4, T)`` in route order.

        Returns:
            ``(B, 4, C/4, T)``, each route's mixer output, in route order.
        """
        u, dt, A, b, c, D, z, bias = zip(*(m.scan_inputs(seqs[:, k].transpose(1, 2)) for k, m in enumerate(self.ssms)))
        u, dt, z = torch.cat(u, 1), torch.cat(dt, 1), torch.cat(z, 1)  # (B, 4·D, T)
        A, D, bias = torch.cat(A, 0), torch.cat(D, 0), torch.cat(bias, 0)  # (4·D, N), (4·D,)
        b, c = torch.stack(b, 1), torch.stack(c, 1)  # (B, 4, N, T): group k serves route k's channels
        fp32 = scan_in_fp32(u, dt)  # float16: in fp32, as Mamba.forward does
        if fp32:
            u, dt, b, c, z = fp32_scan_inputs(u, dt, b, c, z)
        y = selective_scan(u, dt, A, b, c, D, z=z, delta_bias=bias, delta_softplus=True,
                           backend=self.ssms[0].backend)  # (B, 4·D, T)
        ys = [yk.transpose(1, 2) for yk in y.chunk(NUM_ROUTES, 1)]
        outs = [(project_fp32(m.out_proj, yk, seqs.dtype) if fp32 else m.out_proj(yk)).transpose(1, 2)
                for m, yk in zip(self.ssms, ys)]
        return torch.stack(outs, dim=1)

    def mix_routes(self, u: Tensor) -> Tensor:
        """Scan ``u`` along the four QuadSnake routes, one mixer each; concatenate in raster order.

        Args:
            u: ``(B, C/4, H, W)``.

        Returns:
            ``(B, C, H, W)``; channels ``[k·C/4, (k+1)·C/4)`` hold route ``k``'s output.
        """
        Bt, rc, H, W = u.shape
        dirs = get_directions("quadsnake", H, W, NUM_ROUTES, u.device)
        if self.sequential_routes:
            flat = u.reshape(Bt, rc, H * W)
            outs = []
            for k, ssm in enumerate(self.ssms):
                seq = flat.index_select(2, dirs.index[k]).transpose(1, 2)  # (B, T, C/4) in route order
                outs.append(ssm(seq).transpose(1, 2).index_select(2, dirs.inverse[k]))
            y = torch.cat(outs, dim=1)
        else:
            seqs = route(u, dirs)  # (B, 4, C/4, T)
            if self.fused_scan:
                ys = self._mix_fused(seqs)
            else:
                ys = torch.stack([m(seqs[:, k].transpose(1, 2)).transpose(1, 2) for k, m in enumerate(self.ssms)], 1)
            y = scatter_directions(ys, dirs).reshape(Bt, NUM_ROUTES * rc, H * W)  # raster order, routes concatenated
        return y.reshape(Bt, NUM_ROUTES * rc, H, W)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) → (B, C, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"QSVSSBlock: expected (B, {self.dim}, H, W), got {tuple(x.shape)}")
        u = F.silu(self.dw(self.proj1(self.norm(x))))
        x = x + self.drop_path(self.proj_back(self.mix_routes(u)))
        return x + self.drop_path(self.ffn(x))


class PerModalMamba(nn.Module):
    """PMM: ``depth`` :class:`QSVSSBlock` in sequence, for one modality at one stage.

    Layout: ``(B, C, H, W) → (B, C, H, W)``. Keys ``blocks.{i}.*``. ``grad_checkpointing = True``
    recomputes each block in the backward pass while training.

    Args:
        dim: Channels ``C``.
        depth: Number of blocks (MambaAlign: 4).
        drop_path: One rate for every block, or one per block.
        **block_kwargs: :class:`QSVSSBlock` options (``ssm_cfg``, ``d_state``, ``backend``, ``ssm_factory``,
            ``norm_layer``, ``dw_kernel``, ``mlp_ratio``, ``sequential_routes``).
    """

    def __init__(self, dim: int, depth: int = 4, drop_path: float | list[float] = 0.0, **block_kwargs: Any) -> None:
        super().__init__()
        rates = list(drop_path) if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        if len(rates) != depth:
            raise ValueError(f"PerModalMamba: {len(rates)} drop_path rates for {depth} blocks")
        self.blocks = nn.ModuleList(QSVSSBlock(dim, drop_path=r, **block_kwargs) for r in rates)
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) → (B, C, H, W)``."""
        for blk in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.SiLU(), nn.Linear(d_out, d_out))


def _pre(dim: int, d_inner: int, eps: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, d_inner, 1), LayerNorm2d(d_inner, eps=eps), nn.SiLU(),
                         nn.Conv2d(d_inner, d_inner, 3, padding=1))


class CrossMambaInteraction(nn.Module):
    """CMI: a content-conditioned diagonal SSM per modality whose states are decoded by the other modality.

    Layout: ``(f_rgb, f_x)``, both ``(B, C, H, W)`` → ``(f̂_rgb, f̂_x)``, both ``(B, C, H, W)``.

    Per modality ``m``: ``z_m = pre_m(f_m)`` ``(B, D, H, W)`` (1×1 → LN → SiLU → 3×3);
    ``p_m = mean_{H,W} z_m``; ``a_m = clamp(mlp_A,m(p_m) ⊙ A_bar, clamp_logA_min, 0)`` and
    ``b_m = mlp_B,m(p_m) ⊙ B_bar`` ``(B, N)``; tokens ``z_{m,t}`` in raster order and ``u_{m,t} = W_in,m z_{m,t}``
    ``(B, T, N)``; ``h_{m,t} = exp(a_m) ⊙ h_{m,t-1} + b_m ⊙ u_{m,t}`` with ``h_{m,-1} = 0``. The recurrence is
    one :func:`~vision_ssm.ops.selective_scan` call (batch folded into channels, ``Δ = 1``, ``A = a``,
    constant ``B = b``, ``C = 1``). Cross-decoding: ``y_rgb = C_x(h_rgb) + D_rgb(z_rgb)``,
    ``y_x = C_rgb(h_x) + D_x(z_x)``; ``f̂_m = LN(1×1 (D→C)(y_m))``. No residual (MambaAlign replaces the
    stage features with the outputs).

    Args:
        dim: Channels ``C`` of both inputs.
        d_inner: Token channels ``D`` (upstream ``D=256``).
        d_state: State size ``N`` (upstream ``N=128``).
        eps: Epsilon of the per-pixel LayerNorms.
        clamp_logA_min: Lower clamp of ``log A``.
        backend: Selective-scan backend (``None``: automatic).
    """

    def __init__(self, dim: int, d_inner: int = 256, d_state: int = 128, eps: float = 1e-6,
                 clamp_logA_min: float = -20.0, backend: str | None = None) -> None:
        super().__init__()
        self.dim, self.d_inner, self.d_state = dim, d_inner, d_state
        self.clamp_logA_min = clamp_logA_min
        self.backend = backend
        self.A_bar = nn.Parameter(torch.empty(d_state))
        self.B_bar = nn.Parameter(torch.empty(d_state))
        for m in ("rgb", "x"):
            self.add_module(f"{m}_pre", _pre(dim, d_inner, eps))
            self.add_module(f"{m}_mlp_a", _mlp(d_inner, d_state))
            self.add_module(f"{m}_mlp_b", _mlp(d_inner, d_state))
            self.add_module(f"{m}_in", nn.Linear(d_inner, d_state))
            self.add_module(f"{m}_c", nn.Linear(d_state, d_inner))  # decodes the *other* modality's states
            self.add_module(f"{m}_d", nn.Linear(d_inner, d_inner))
            self.add_module(f"{m}_out", nn.Conv2d(d_inner, dim, 1))
            self.add_module(f"{m}_norm_out", LayerNorm2d(dim, eps=eps))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Upstream init: convs kaiming-normal (ReLU gain), linears xavier-uniform, zero biases;
        ``A_bar ~ -0.05·N(0, 1)``, ``B_bar ~ 0.05·N(0, 1)``."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        self.A_bar.normal_().mul_(-0.05)
        self.B_bar.normal_().mul_(0.05)

    def states(self, z: Tensor, modality: str) -> Tensor:
        """The hidden states of one modality.

        Args:
            z: Pre-processed map ``(B, D, H, W)``.
            modality: ``"rgb"`` or ``"x"`` (which MLPs and input projection to use).

        Returns:
            ``h`` ``(B, T, N)`` with ``T = H·W`` in raster order; fp32 for float16 inputs (the states sum
            up to ``T`` inputs and can exceed float16's range).
        """
        Bt, _, H, W = z.shape
        T, N = H * W, self.d_state
        pooled = z.mean(dim=(2, 3))
        log_a = (getattr(self, f"{modality}_mlp_a")(pooled) * self.A_bar).clamp(self.clamp_logA_min, 0.0)
        b = getattr(self, f"{modality}_mlp_b")(pooled) * self.B_bar  # (B, N)
        u = getattr(self, f"{modality}_in")(z.flatten(2).transpose(1, 2))  # (B, T, N)
        # h_t = exp(log_a)·h_{t-1} + b·u_t for every (batch, state) pair: fold B into the scan's channels.
        u = fp32_scan_inputs(u.transpose(1, 2).reshape(1, Bt * N, T))[0]
        ones = u.new_ones(()).expand(1, Bt * N, T)
        h = selective_scan(u, ones, log_a.reshape(Bt * N, 1).float(), b.reshape(Bt * N, 1),
                           u.new_ones(()).expand(Bt * N, 1), backend=self.backend)
        return h.reshape(Bt, N, T).transpose(1, 2)

    def forward(self, f_rgb: Tensor, f_x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W), (B, C, H, W) → (B, C, H, W), (B, C, H, W)``."""
        if f_rgb.shape != f_x.shape or f_rgb.dim() != 4 or f_rgb.shape[1] != self.dim:
            raise ValueError(f"CrossMambaInteraction: expected two (B, {self.dim}, H, W) maps of the same shape, "
                             f"got {tuple(f_rgb.shape)} and {tuple(f_x.shape)}")
        Bt, _, H, W = f_rgb.shape
        z_rgb, z_x = self.rgb_pre(f_rgb), self.x_pre(f_x)
        fp32 = scan_in_fp32(z_rgb, z_x)  # float16: the states, their decoding and the 1×1 conv run in fp32
        h_rgb, h_x = self.states(z_rgb, "rgb"), self.states(z_x, "x")
        t_rgb, t_x = z_rgb.flatten(2).transpose(1, 2), z_x.flatten(2).transpose(1, 2)  # (B, T, D)
        decode = (lambda lin, h: run_fp32(lin, h)) if fp32 else (lambda lin, h: lin(h))
        y_rgb = decode(self.x_c, h_rgb) + self.rgb_d(t_rgb)
        y_x = decode(self.rgb_c, h_x) + self.x_d(t_x)

        def out(y: Tensor, m: str) -> Tensor:
            y = y.transpose(1, 2).reshape(Bt, self.d_inner, H, W)
            if fp32:  # normalised in fp32; cast back outside autocast (a float16 model)
                y = run_fp32(getattr(self, f"{m}_norm_out"), run_fp32(getattr(self, f"{m}_out"), y))
                return y if autocast_on(y) else y.to(z_rgb.dtype)
            return getattr(self, f"{m}_norm_out")(getattr(self, f"{m}_out")(y))

        return out(y_rgb, "rgb"), out(y_x, "x")

    def extra_repr(self) -> str:
        return f"dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, backend={self.backend!r}"



def _conv_bn(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]


class AAFBlock(nn.Module):
    """One alignment-aware fusion step: ``out = shortcut(u) + lf + cr`` with ``lf = LocalFusion(u)``,
    ``cr = ChannelReconst(lf)``.

    Layout: ``(B, C_in, H, W) → (B, C_out, H, W)``.

    - ``local``: ``SiLU(BN(3×3 (mid→C_out)(SiLU(BN(3×3 (C_in→mid)(u))))) + BN(1×1 (C_in→C_out)(u)))``.
    - ``reconst``: ``BN(1×1 (C_out/r→C_out)(SiLU(BN(1×1 (C_out→C_out/r)(lf)))))``.
    - ``shortcut``: the identity when ``C_in == C_out``, else ``BN(1×1 (C_in→C_out)(u))`` (upstream added
      ``u`` unprojected, which fails whenever the channel counts differ).

    Args:
        in_dim: ``C_in``.
        out_dim: ``C_out``.
        mid_dim: Hidden channels of the 3×3 pair (default ``max(64, C_in // 4)``).
        reduction: ``r`` of the channel reconstruction.
    """

    def __init__(self, in_dim: int, out_dim: int, mid_dim: int | None = None, reduction: int = 4) -> None:
        super().__init__()
        mid = mid_dim or max(64, in_dim // 4)
        self.local_main = nn.Sequential(*_conv_bn(in_dim, mid, 3), nn.SiLU(), *_conv_bn(mid, out_dim, 3))
        self.local_skip = nn.Sequential(*_conv_bn(in_dim, out_dim, 1))
        red = max(1, out_dim // reduction)
        self.reconst = nn.Sequential(*_conv_bn(out_dim, red, 1), nn.SiLU(), *_conv_bn(red, out_dim, 1))
        self.shortcut = nn.Identity() if in_dim == out_dim else nn.Sequential(*_conv_bn(in_dim, out_dim, 1))

    def forward(self, u: Tensor) -> Tensor:
        """``(B, C_in, H, W) → (B, C_out, H, W)``."""
        lf = F.silu(self.local_main(u) + self.local_skip(u))
        return self.shortcut(u) + lf + self.reconst(lf)


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class AlignmentAwareFusion(nn.Module):
    """AAF: fuse both modalities' stage-3/4/5 maps top-down into one stage-3 map.

    Layout: six NCHW maps ``rgb_s3, x_s3`` ``(B, C3, H3, W3)``, ``rgb_s4, x_s4`` ``(B, C4, H4, W4)``,
    ``rgb_s5, x_s5`` ``(B, C5, H5, W5)`` → ``(B, out_dim, H3, W3)``; any sizes (bilinear resizing,
    ``align_corners=False``).

    ``f4 = AAFBlock([rgb_s4, x_s4, up(rgb_s5), up(x_s5)])`` (``2·C4 + 2·C5 → F``),
    ``f3 = AAFBlock([rgb_s3, x_s3, up(f4)])`` (``2·C3 + F → F``), ``out = SiLU(BN(3×3 (F→F)(f3)))``.
    The alignment is implicit (concatenation and 3×3 convolutions; no offsets or flow).

    With ``num_modalities=1`` (an RGB-only baseline) the ``x_*`` maps are absent (``None``) and the blocks
    take ``C4 + C5`` and ``C3 + F`` channels: the same fusion of one modality's scales.

    Args:
        in_dims: ``(C3, C4, C5)``.
        out_dim: ``F`` (MambaAlign: 256).
        reduction: ``r`` of the channel reconstructions.
        num_modalities: 2 (RGB + auxiliary) or 1 (RGB only).
    """

    def __init__(self, in_dims: tuple[int, int, int], out_dim: int = 256, reduction: int = 4,
                 num_modalities: int = 2) -> None:
        super().__init__()
        if num_modalities not in (1, 2):
            raise ValueError(f"AlignmentAwareFusion: num_modalities must be 1 or 2, got {num_modalities!r}")
        c3, c4, c5 = in_dims
        n = num_modalities
        self.in_dims, self.out_dim, self.num_modalities = tuple(in_dims), out_dim, n
        self.block4 = AAFBlock(n * c4 + n * c5, out_dim, reduction=reduction)
        self.block3 = AAFBlock(n * c3 + out_dim, out_dim, reduction=reduction)
        self.post_proj = nn.Sequential(*_conv_bn(out_dim, out_dim, 3), nn.SiLU())

    def forward(self, rgb_s3: Tensor, x_s3: Tensor | None, rgb_s4: Tensor, x_s4: Tensor | None, rgb_s5: Tensor,
                x_s5: Tensor | None) -> Tensor:
        """Fuse; see the class docstring for the layouts."""
        two = self.num_modalities == 2
        for name, a, b, c in (("s3", rgb_s3, x_s3, 0), ("s4", rgb_s4, x_s4, 1), ("s5", rgb_s5, x_s5, 2)):
            if (b is None) == two:
                raise ValueError(f"AlignmentAwareFusion built with num_modalities={self.num_modalities}: x_{name} "
                                 f"must be {'a tensor' if two else 'None'}, got "
                                 f"{'None' if b is None else tuple(b.shape)}")
            if a.dim() != 4 or a.shape[1] != self.in_dims[c] or (two and a.shape != b.shape):
                raise ValueError(f"AlignmentAwareFusion: {name} maps must all be (B, {self.in_dims[c]}, H, W), "
                                 f"got {tuple(a.shape)}" + (f" and {tuple(b.shape)}" if two else ""))
        if not two:
            f4 = self.block4(torch.cat([rgb_s4, _up(rgb_s5, rgb_s4)], dim=1))
            return self.post_proj(self.block3(torch.cat([rgb_s3, _up(f4, rgb_s3)], dim=1)))
        f4 = self.block4(torch.cat([rgb_s4, x_s4, _up(rgb_s5, rgb_s4), _up(x_s5, rgb_s4)], dim=1))
        f3 = self.block3(torch.cat([rgb_s3, x_s3, _up(f4, rgb_s3)], dim=1))
        return self.post_proj(f3)

"""SS2D: the 2-D selective-scan block of VMamba (arXiv 2401.10166), also used by MambaAD and Fusion-Mamba.

One class covers the variants with released weights, chosen by plain constructor arguments:

- VMamba ``v0`` (vanilla T/S/B), MambaAD's SS2D and Fusion-Mamba's SS2D: ``SS2D(C)`` (the defaults:
  ``d_state=16``, ``ssm_ratio=2``, conv bias, gate branch ``z``, LayerNorm out-norm, channels-last).
- VMamba ``v05_noz`` (every released VMamba-v2 model): ``SS2D(C, d_state=1, ssm_ratio=1 or 2,
  conv_bias=False, gate=False, channels_first=True, force_fp32=False)``.
- MambaAD: ``SS2D(C, scan="hilbert", directions=8, scan_index_size=H)`` (the index buffers make
  upstream checkpoints load strictly).

The scan itself is :func:`vision_ssm.ops.ss2d_scan`: the per-direction ``x_proj``/``dt_projs``
projections are per-position linear maps, so they are computed once in the pixel domain and the op
routes, scans (any selective-scan backend, or a fused kernel) and merges.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from timm.layers import LayerNorm2d, register_notrace_function, register_notrace_module
from torch import Tensor, nn

from ..ops import DirectionSet, DirectionSpec, resolve_directions, scan_order, ss2d_channels_last, ss2d_scan
from ._fx import is_fx_tracing as _is_fx_tracing
from ._precision import run_fp32, scan_in_fp32
from ._validate import check_input, check_int, check_number, check_rate
from .linear2d import Linear2d
from .weight_init import A_log_init, D_init, init_dt_proj_

__all__ = ["SS2D", "ScanIndex", "init_ss2d_core_", "ss2d_core"]


class ScanIndex(nn.Module):
    """MambaAD's stored scan order: persistent int64 buffers ``index_flat`` / ``index_flat_inv`` ``(1, 1, L)``.

    Upstream keeps them as non-trainable ``nn.Parameter``; here they are buffers with the same
    state-dict keys, so official checkpoints load strictly. They record the base order of the scan
    family at a fixed ``H×W``; the scan itself uses :func:`vision_ssm.ops.resolve_directions`.
    """

    def __init__(self, family: str, H: int, W: int):
        super().__init__()
        order = scan_order(family, H, W).to(torch.int64)
        self.register_buffer("index_flat", order.view(1, 1, -1).clone())
        self.register_buffer("index_flat_inv", torch.argsort(order).view(1, 1, -1))


def _block_diagonal(w: Tensor) -> Tensor:
    """The ``(K*R, K*D)`` block-diagonal matrix of ``K`` blocks ``w`` ``(K, R, D)`` (block ``k`` at
    rows ``k*R...``, columns ``k*D...``): ``torch.block_diag(*w)`` in two kernels instead of ``K + 1``
    (and fewer in the backward; an eager training step is bound by kernel launches)."""
    K, R, D = w.shape
    out = w.new_zeros(K, R, K, D)
    out.diagonal(dim1=0, dim2=2).copy_(w.permute(1, 2, 0))  # the (R, D, K) diagonal of (k, k) pairs
    return out.view(K * R, K * D)


def _direction_source(
        scan: str | tuple[str, int] | DirectionSpec | DirectionSet,
        directions: int | DirectionSpec | DirectionSet | None,
) -> DirectionSpec | DirectionSet:
    """What SS2D hands :func:`~vision_ssm.ops.resolve_directions` per forward: a size-independent
    :class:`~vision_ssm.ops.DirectionSpec`, or a fixed :class:`~vision_ssm.ops.DirectionSet`."""
    if isinstance(directions, DirectionSpec) and directions.family == "custom":
        raise ValueError("SS2D: directions=DirectionSpec('custom', ...) has no scan order to build; pass the "
                         "DirectionSet of the custom order (DirectionSet.from_index) as scan=")
    if isinstance(directions, (DirectionSpec, DirectionSet)):
        return directions
    k = None if directions is None else check_int(directions, "directions", "SS2D")
    if isinstance(scan, DirectionSet):
        if k is not None and k != scan.K:
            raise ValueError(f"SS2D: direction set {scan.name!r} has K={scan.K}, directions={directions}")
        return scan
    if not isinstance(scan, (str, tuple, DirectionSpec)):
        raise TypeError(f"SS2D: scan must be a family name ('hilbert'), a 'family-K' string, a (family, K) tuple, "
                        f"a DirectionSpec or a DirectionSet, got {scan!r} ({type(scan).__name__})")
    bare_name = isinstance(scan, str) and not scan.rpartition("-")[2].isdigit()
    spec = DirectionSpec.parse(scan, 4 if k is None and bare_name else k)
    if spec.family == "custom":
        raise ValueError("SS2D: scan=DirectionSpec('custom', ...) has no scan order to build; pass the "
                         "DirectionSet of the custom order (DirectionSet.from_index)")
    if k is not None and spec.num_directions != k:
        raise ValueError(f"SS2D: scan {spec.name!r} has K={spec.num_directions}, directions={k}")
    return spec


def _resolve_act(act_layer: str | Callable[[], nn.Module] | None) -> nn.Module:
    if act_layer is None:
        return nn.Identity()
    if isinstance(act_layer, str):
        from timm.layers import get_act_layer

        act_layer = get_act_layer(act_layer)
    return act_layer()


def ss2d_core(
        x: Tensor,
        x_proj_weight: Tensor,
        dt_projs_weight: Tensor,
        dt_projs_bias: Tensor,
        A_logs: Tensor,
        Ds: Tensor,
        dirs: DirectionSet,
        *,
        force_fp32: bool = True,
        backend: str | None = None,
) -> Tensor:
    """SS2D's K-direction selective scan of a ``(B, D, H, W)`` map with the given SSM parameters.

    The core of :meth:`SS2D.forward_core`, as a function of its parameters so that blocks holding
    several SSM cores (Fusion-Mamba's DSSF: one per modality, or one shared) run the same code.
    A channel-last ``x`` (unit channel stride) keeps every scan input and the output channel-last.

    Args:
        x: ``(B, D, H, W)`` map (after the depthwise conv and activation).
        x_proj_weight: ``(K, R+2N, D)`` per-direction projection to ``(dt, B, C)``.
        dt_projs_weight: ``(K, D, R)`` low-rank step-size projection.
        dt_projs_bias: ``(K, D)`` step-size bias (added once, before the softplus).
        A_logs: ``(K*D, N)``; ``A = -exp(A_logs)``.
        Ds: ``(K*D,)`` skip.
        dirs: The K directions for this ``H×W`` (:func:`~vision_ssm.ops.resolve_directions`).
        force_fp32: Cast the scan inputs to fp32. float16 inputs are cast whatever this says: the
            scan's output (and the sum of the K directions) can exceed float16's range (65504).
        backend: Selective-scan backend (``None``: automatic).

    Returns:
        ``(B, D, H, W)``, the K directions summed back onto the grid (fp32 if ``force_fp32`` or the
        projections are float16; normalise it in fp32 before casting it back, see
        :func:`~vision_ssm.layers._precision.run_fp32`).
    """
    B, Dm, H, W = x.shape
    L = H * W
    K, N = x_proj_weight.shape[0], A_logs.shape[1]
    R = dt_projs_weight.shape[2]
    xf = x.reshape(B, Dm, L)
    channels_last = xf.stride(1) == 1 and Dm > 1
    # per-direction projections, computed in the pixel domain (they are per-position maps)
    if channels_last:
        # (B, L, Dm) @ (Dm, K*(R+2N)): the same products, laid out (B, L, K, R+2N)
        x_dbl = torch.matmul(xf.transpose(1, 2), x_proj_weight.reshape(K * (R + 2 * N), Dm).t())
        dts, Bs, Cs = torch.split(x_dbl.view(B, L, K, R + 2 * N), [R, N, N], dim=3)
        # all K rank-R projections as one GEMM against the block-diagonal (K*R, K*D) weight:
        # (B*L, K*R) @ (K*R, K*D) -> memory (B, L, K, D), viewed as the logical (B, K, D, L).
        # (A batched (K, B*L, R) @ (K, R, D) product with R = 6 was the largest operator of a
        # vmamba_tiny_s1l8 bf16 training step on an H100, 12.8 ms of kernel time: an unaligned
        # inner dim.)
        w_bd = _block_diagonal(dt_projs_weight.transpose(1, 2))
        dts = torch.matmul(dts.reshape(B * L, K * R), w_bd).view(B, L, K, Dm).permute(0, 2, 3, 1)
        Bs, Cs = Bs.permute(0, 2, 3, 1), Cs.permute(0, 2, 3, 1)  # (B, K, N, L) views, N fastest
    else:
        x_dbl = torch.matmul(x_proj_weight.reshape(K * (R + 2 * N), Dm), xf).view(B, K, R + 2 * N, L)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.matmul(dt_projs_weight.unsqueeze(0), dts)  # (B, K, D, L)
        Bs, Cs = Bs.contiguous(), Cs.contiguous()
    if force_fp32 or scan_in_fp32(xf, dts):  # float16: the scan's output can exceed its range
        xf, dts, Bs, Cs = xf.float(), dts.float(), Bs.float(), Cs.float()
    As = -torch.exp(A_logs.float())
    y = ss2d_scan(
        xf, dts, As, Bs, Cs, Ds.float(), dt_projs_bias.reshape(-1).float(),
        dirs, True, backend=backend,
    )
    return y.view(B, Dm, H, W)


@torch.no_grad()
def init_ss2d_core_(
        x_proj_weight: Tensor,
        dt_projs_weight: Tensor,
        dt_projs_bias: Tensor,
        A_logs: Tensor,
        Ds: Tensor,
        **dt_init: float | str,
) -> None:
    """Upstream ``mamba_init`` (``ssm_init="v0"``) of one SS2D core, in place (shapes as in :func:`ss2d_core`).

    ``dt_projs_weight`` ~ U(±R^-0.5·dt_scale) and ``dt_projs_bias`` = softplus⁻¹(dt)
    (:func:`~vision_ssm.layers.weight_init.init_dt_proj_`, ``dt_init`` holds its ``dt_*`` options);
    ``x_proj_weight`` ~ U(±1/√D); ``A_logs`` = log(1..N); ``Ds`` = 1.
    """
    init_dt_proj_(dt_projs_weight, dt_projs_bias, dt_projs_weight.shape[2], **dt_init)
    bound = x_proj_weight.shape[2] ** -0.5
    x_proj_weight.uniform_(-bound, bound)
    A_logs.copy_(A_log_init(A_logs.shape[1], A_logs.shape[0], A_logs.device))
    Ds.copy_(D_init(Ds.shape[0], Ds.device))


class SS2D(nn.Module):
    """VMamba's 2-D selective-scan block (SS2D), K-direction cross-scan with any scan order.

    Input and output are ``(B, H, W, C)`` (``channels_first=False``) or ``(B, C, H, W)``
    (``channels_first=True``). Flow: ``in_proj`` → (x, z) → depthwise conv + act on x →
    K-direction selective scan of x (summed back onto the grid) → ``out_norm`` → ``· act(z)`` when
    ``gate`` → ``out_proj`` → dropout.

    Parameter names and shapes follow upstream (``K`` directions, ``D = int(ssm_ratio * C)``,
    ``R = dt_rank``, ``N = d_state``): ``in_proj.weight`` ``(2D or D, C)``, ``conv2d.weight``
    ``(D, 1, k, k)`` (+ ``conv2d.bias``), ``x_proj_weight`` ``(K, R+2N, D)``, ``dt_projs_weight``
    ``(K, D, R)``, ``dt_projs_bias`` ``(K, D)``, ``A_logs`` ``(K*D, N)``, ``Ds`` ``(K*D,)``,
    ``out_norm.*`` ``(D,)``, ``out_proj.weight`` ``(C, D)``. Direction ``k`` owns slice ``k`` of each.

    Args:
        d_model: Channels ``C`` in and out.
        d_state: SSM state size ``N``.
        ssm_ratio: Inner width ``D = int(ssm_ratio * C)``.
        dt_rank: Rank ``R`` of the step-size projection; ``"auto"`` = ``ceil(C / 16)``.
        d_conv: Depthwise conv kernel size; ``<= 1`` disables the conv (the activation still applies).
        conv_bias: Bias in the depthwise conv.
        bias: Bias in ``in_proj``/``out_proj``.
        act_layer: Activation after the conv and on the gate (default SiLU).
        gate: Keep the multiplicative ``z`` branch (VMamba v0, MambaAD); ``False`` is v2's ``_noz``.
        out_norm: ``"layernorm"`` (``LayerNorm(D)``, or ``LayerNorm2d(D)`` when channels-first),
            ``"none"``/``None``, or a callable ``f(D) -> nn.Module``.
        out_norm_eps: Epsilon of the LayerNorm out-norm.
        channels_first: Input/output layout: ``False`` = NHWC ``(B, H, W, C)``, ``True`` = NCHW
            ``(B, C, H, W)`` with 1×1-conv projections (VMamba-v2 ``ln2d``). Named the same in every block.
        scan: What to scan, anything :func:`vision_ssm.ops.resolve_directions` accepts: a family name
            (``"sweep"``, ``"snake"``/``"scan"``, ``"zorder"``, ``"zigzag"``, ``"hilbert"``, ...; with
            ``directions``), a ``"family-K"`` string, a ``(family, K)`` tuple, a
            :class:`~vision_ssm.ops.DirectionSpec` or a fixed :class:`~vision_ssm.ops.DirectionSet` (then
            the input must have its ``H×W``). Resolved once per forward for the input's size and device.
        directions: Number of directions ``K`` (VMamba: 4; MambaAD: 2/4/8); ``None``: the ``K`` that
            ``scan`` carries, else 4. A :class:`~vision_ssm.ops.DirectionSpec` / ``DirectionSet`` is also
            accepted here (the older spelling).
        scan_index_size: If set (``int`` or ``(H, W)``), register MambaAD's ``scans.index_flat`` /
            ``scans.index_flat_inv`` buffers for that map size (for strict loading of its checkpoints).
        force_fp32: Cast the scan inputs to fp32 (VMamba v0); the scan math is fp32 either way. float16
            inputs are cast whatever this says (the scan's output can exceed float16's range), and an
            fp32 scan output goes through ``out_norm`` in fp32 before the cast back.
        dropout: Dropout after ``out_proj``.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init: ``"random"`` (uniform ±``R^-0.5·dt_scale``) or ``"constant"`` init of ``dt_projs_weight``.
        dt_scale: Scale of the ``dt_projs_weight`` init.
        dt_init_floor: Floor of the initial step size.
        backend: Selective-scan backend passed to :func:`vision_ssm.ops.ss2d_scan` (default: automatic).
        device: Parameter device.
        dtype: Parameter dtype (``A_logs`` and ``Ds`` are always fp32).
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
            gate: bool = True,
            out_norm: str | Callable[[int], nn.Module] | None = "layernorm",
            out_norm_eps: float = 1e-5,
            channels_first: bool = False,
            scan: str | tuple[str, int] | DirectionSpec | DirectionSet = "sweep",
            directions: int | DirectionSpec | DirectionSet | None = None,
            scan_index_size: int | tuple[int, int] | None = None,
            force_fp32: bool = True,
            dropout: float = 0.0,
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
            backend: str | None = None,
            device: torch.device | str | None = None,
            dtype: torch.dtype | None = None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int(d_model, "d_model", "SS2D")
        check_int(d_state, "d_state", "SS2D")
        check_number(ssm_ratio, "ssm_ratio", "SS2D", low=0.0, low_open=True)
        if int(ssm_ratio * d_model) < 1:
            raise ValueError(f"SS2D: ssm_ratio * d_model must give an inner width >= 1, got {ssm_ratio} * {d_model}")
        if dt_rank != "auto":
            check_int(dt_rank, "dt_rank", "SS2D")
        check_int(d_conv, "d_conv", "SS2D", minimum=0)
        check_rate(dropout, "dropout", "SS2D")
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = d_inner = int(ssm_ratio * d_model)
        self.dt_rank = dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.channels_first = channels_first
        self.gate = gate
        self.force_fp32 = force_fp32
        self.backend = backend
        self._dirs = _direction_source(scan, directions)
        self.scan = self._dirs.family
        self.directions = K = self._dirs.K if isinstance(self._dirs, DirectionSet) else self._dirs.num_directions

        linear = Linear2d if channels_first else nn.Linear
        self.in_proj = linear(d_model, d_inner * (2 if gate else 1), bias=bias, **dd)
        self.act = _resolve_act(act_layer)
        if d_conv > 1:
            self.conv2d = nn.Conv2d(
                d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias, **dd)
        else:
            self.conv2d = nn.Identity()

        self.x_proj_weight = nn.Parameter(torch.empty(K, dt_rank + 2 * d_state, d_inner, **dd))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, d_inner, dt_rank, **dd))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, d_inner, **dd))
        self.A_logs = nn.Parameter(torch.empty(K * d_inner, d_state, device=device, dtype=torch.float32))
        self.Ds = nn.Parameter(torch.empty(K * d_inner, device=device, dtype=torch.float32))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True

        if out_norm in (None, "none"):
            self.out_norm = nn.Identity()
        elif out_norm in ("layernorm", "ln", "ln2d"):
            norm_cls = LayerNorm2d if channels_first else nn.LayerNorm
            self.out_norm = norm_cls(d_inner, eps=out_norm_eps, **dd)
        elif callable(out_norm):
            self.out_norm = out_norm(d_inner)
        else:
            raise ValueError(f"SS2D: unknown out_norm {out_norm!r}")
        self.out_proj = linear(d_inner, d_model, bias=bias, **dd)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if scan_index_size is not None:
            h, w = (scan_index_size, scan_index_size) if isinstance(scan_index_size, int) else scan_index_size
            self.scans = ScanIndex(self.scan, h, w).to(device=device)

        self._dt_init = dict(dt_min=dt_min, dt_max=dt_max, dt_init=dt_init, dt_scale=dt_scale,
                             dt_init_floor=dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Upstream ``mamba_init`` (``ssm_init="v0"``) of the SSM parameters (:mod:`~vision_ssm.layers.weight_init`).

        ``dt_projs_weight`` ~ U(±R^-0.5·dt_scale); ``dt_projs_bias`` = softplus⁻¹(dt) with
        dt log-uniform in ``[dt_min, dt_max]`` (clamped at the floor, drawn per direction);
        ``x_proj_weight`` ~ U(±1/√D) (``nn.Linear`` default); ``A_logs`` = log(1..N) (S4D-real); ``Ds`` = 1.
        """
        init_ss2d_core_(self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds,
                        **self._dt_init)

    def _directions(self, H: int, W: int, device: torch.device) -> DirectionSet:
        """The configured directions for an ``H×W`` map on ``device`` (:func:`~vision_ssm.ops.resolve_directions`)."""
        dirs = resolve_directions(self._dirs, H, W, device=device)
        if isinstance(self._dirs, DirectionSet) and dirs is not self._dirs:
            self._dirs = dirs  # keep a fixed set on the device it is used on (one copy, not one per call)
        return dirs

    def forward_core(self, x: Tensor) -> Tensor:
        """The K-direction scan of a ``(B, D, H, W)`` map; returns ``(B, D, H, W)`` (fp32 if ``force_fp32`` or float16).

        A channel-last ``x`` (``torch.channels_last`` memory, as :meth:`forward` makes it on CUDA)
        keeps every scan input and the output channel-last (unit channel stride), which the fused
        Triton core reads and writes without layout copies; otherwise all are channel-first.
        See :func:`ss2d_core`.
        """
        return ss2d_core(x, self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds,
                         self._directions(x.shape[2], x.shape[3], x.device), force_fp32=self.force_fp32,
                         backend=self.backend)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``, or ``(B, C, H, W)`` → ``(B, C, H, W)`` if ``channels_first``."""
        check_input(x, "SS2D", "NCHW" if self.channels_first else "NHWC", self.d_model, self.in_proj.weight)
        in_dtype = x.dtype
        cdim = 1 if self.channels_first else -1
        xz = self.in_proj(x)
        if self.gate:
            x, z = xz.chunk(2, dim=cdim)
        else:
            x, z = xz, None
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        needs_grad = torch.is_grad_enabled() and self.x_proj_weight.requires_grad
        x = self.act(self.conv2d(x.contiguous(memory_format=self._core_memory_format(
            x, self.backend, self.d_state, needs_grad))))
        y = self.forward_core(x)
        if not self.channels_first:
            y = y.permute(0, 2, 3, 1)
        y = (run_fp32(self.out_norm, y) if y.dtype != in_dtype else self.out_norm(y)).to(in_dtype)
        if z is not None:
            y = y * self.act(z)
        return self.dropout(self.out_proj(y))

    @staticmethod
    def _core_memory_format(x: Tensor, backend: str | None = None, d_state: int = 16,
                            needs_grad: bool = True) -> torch.memory_format:
        """Channel-last where the selective-scan core reads it without copies
        (:func:`~vision_ssm.ops.ss2d_channels_last`: the fused Triton core on CUDA; numba's fused CPU
        core for inference at small ``d_state``), channel-first elsewhere and under FX tracing."""
        if _is_fx_tracing():
            return torch.contiguous_format
        if ss2d_channels_last(x.device, backend, d_state, needs_grad):
            return torch.channels_last
        return torch.contiguous_format

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"scan={self.scan!r}, directions={self.directions}, gate={self.gate}, "
                f"channels_first={self.channels_first}")


# FX: the scan walks data-dependent direction tables; keep SS2D a leaf for timm / torchvision feature extraction.
register_notrace_module(SS2D)
register_notrace_function(ss2d_scan)

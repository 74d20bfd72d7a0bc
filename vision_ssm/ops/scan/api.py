"""The public selective-scan op: mamba-ssm's signature, argument checks, backend dispatch."""
from __future__ import annotations

import torch
from torch import Tensor

from .registry import backend_for_call

# float64 is accepted as an extension (math then runs in float64; used by gradcheck tests).
_FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"selective_scan: {msg}")


def _canonical_bc(name: str, M: Tensor, Bt: int, Dm: int, N: int, L: int, in_dtype) -> Tensor:
    """Validate B or C and return it as constant ``(D, N)`` or variable ``(Bt, G, N, L)``."""
    if M.is_complex():
        raise NotImplementedError(f"selective_scan: complex {name} is not supported")
    if M.dim() == 2:
        _check(tuple(M.shape) == (Dm, N), f"constant {name} must be (D, N)=({Dm}, {N}), got {tuple(M.shape)}")
        _check(M.dtype in _FLOAT_TYPES, f"{name} dtype must be float32/float16/bfloat16, got {M.dtype}")
        return M
    if M.dim() == 3:
        M = M.unsqueeze(1)
    _check(M.dim() == 4, f"{name} must be (D, N), (B, N, L) or (B, G, N, L), got {M.dim()}-D")
    Bm, G, Nm, Lm = M.shape
    _check(
        (Bm, Nm, Lm) == (Bt, N, L),
        f"variable {name} must be (B, N, L)=({Bt}, {N}, {L}) or (B, G, N, L), got {tuple(M.shape)}",
    )
    _check(G >= 1 and Dm % G == 0, f"{name} has {G} groups, which does not divide D={Dm}")
    _check(M.dtype in _FLOAT_TYPES, f"{name} dtype must be float32/float16/bfloat16, got {M.dtype}")
    return M if M.stride(-1) == 1 else M.contiguous()


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature and semantics.

    ``δ = softplus(delta + delta_bias)`` (softplus optional), then for every step ``l``
    ``h_l = exp(δ_l·A) ⊙ h_{l-1} + δ_l·B_l·u_l`` and ``y_l = Σ_n C_l[n]·h_l[n]``;
    ``out = (y + D·u) · silu(z)``. Internal math is fp32; ``out`` has ``u``'s dtype.

    Args:
        u: Input ``(B, D, L)``, float32/float16/bfloat16 (float64 is accepted too: the math
            then runs in float64, which is what ``torch.autograd.gradcheck`` needs).
        delta: ``(B, D, L)``, same dtype as ``u``.
        A: ``(D, N)`` real float tensor (usually ``-exp(A_log)``).
        B: Constant ``(D, N)`` or variable ``(B, N, L)`` / ``(B, G, N, L)``; with ``G`` groups
            channel ``d`` uses group ``d // (D // G)``.
        C: Like ``B``.
        D: Optional skip ``(D,)``.
        z: Optional gate ``(B, D, L)``.
        delta_bias: Optional ``(D,)``.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        return_last_state: Also return the last state ``(B, D, N)`` (fp32). As in mamba-ssm,
            its gradient is not propagated by the fused backends.
        backend: Force a backend (``"reference"``, ``"chunked"``, ``"numba"``, ``"triton"``,
            ``"mamba_ssm"``, ...). Default: the innermost :func:`use_backend`, then
            ``VISION_SSM_BACKEND``, then the best available for the device (CPU: ``numba`` if
            installed, else ``chunked``; CUDA: ``triton``, then ``mamba_ssm``, then ``chunked``).

    Returns:
        ``out`` ``(B, D, L)``, or ``(out, last_state)`` if ``return_last_state``.

    Raises:
        ValueError: Bad shapes, dtypes or devices.
        NotImplementedError: Complex ``A``/``B``/``C``.
        RuntimeError: The requested backend is unavailable.

    Example:
        >>> import torch
        >>> from vision_ssm.ops import selective_scan
        >>> u, delta = torch.randn(2, 8, 32), torch.rand(2, 8, 32)          # (B, D, L)
        >>> A, B, C = -torch.rand(8, 4), torch.randn(2, 4, 32), torch.randn(2, 4, 32)
        >>> y, last = selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True)
        >>> tuple(y.shape), tuple(last.shape)                               # (B, D, L), (B, D, N)
        ((2, 8, 32), (2, 8, 4))
        >>> ref = selective_scan(u, delta, A, B, C, delta_softplus=True, backend="reference")
        >>> torch.allclose(y, ref, atol=1e-4)
        True
    """
    if A.is_complex():
        raise NotImplementedError("selective_scan: complex A is not supported (real A only)")
    for name, t in (("u", u), ("delta", delta), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"selective_scan: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t is not None and t.is_complex():
            raise NotImplementedError(f"selective_scan: complex {name} is not supported (real inputs only)")
    _check(u.dim() == 3, f"u must be (B, D, L), got shape {tuple(u.shape)}")
    Bt, Dm, L = u.shape
    _check(tuple(delta.shape) == (Bt, Dm, L), f"delta must match u {tuple(u.shape)}, got {tuple(delta.shape)}")
    _check(u.dtype in _FLOAT_TYPES, f"u dtype must be float32/float16/bfloat16, got {u.dtype}")
    _check(delta.dtype == u.dtype, f"delta dtype {delta.dtype} must equal u dtype {u.dtype}")
    _check(A.dim() == 2 and A.shape[0] == Dm, f"A must be (D, N) with D={Dm}, got {tuple(A.shape)}")
    _check(A.dtype in _FLOAT_TYPES, f"A must be a float tensor, got {A.dtype}")
    N = A.shape[1]
    _check(N >= 1, "A must have N >= 1 states")
    B = _canonical_bc("B", B, Bt, Dm, N, L, u.dtype)
    C = _canonical_bc("C", C, Bt, Dm, N, L, u.dtype)
    if D is not None:
        _check(tuple(D.shape) == (Dm,), f"D must be ({Dm},), got {tuple(D.shape)}")
        _check(D.dtype in _FLOAT_TYPES, f"D must be a float tensor, got {D.dtype}")
    if delta_bias is not None:
        _check(tuple(delta_bias.shape) == (Dm,), f"delta_bias must be ({Dm},), got {tuple(delta_bias.shape)}")
        _check(delta_bias.dtype in _FLOAT_TYPES, f"delta_bias must be a float tensor, got {delta_bias.dtype}")
    if z is not None:
        _check(tuple(z.shape) == (Bt, Dm, L), f"z must match u {tuple(u.shape)}, got {tuple(z.shape)}")
        _check(z.dtype == u.dtype, f"z dtype {z.dtype} must equal u dtype {u.dtype}")
    for name, t in (("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is not None and t.device != u.device:
            raise ValueError(f"selective_scan: {name} is on {t.device} but u is on {u.device}")
    fn = backend_for_call(u.device, backend).load()
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

"""The reference selective scan: a sequential loop over the sequence, the oracle of every test.

Semantics are mamba-ssm's ``selective_scan_ref`` (see ``docs/backends.md``): all internal math
in fp32, output cast to the input dtype, gradients supplied by autograd.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _expand_groups(M: Tensor, dim: int) -> Tensor:
    """(Bt, G, N) -> (Bt, dim, N), channel d using group d // (dim // G)."""
    G = M.shape[1]
    return M if G == dim else M.repeat_interleave(dim // G, dim=1)


def selective_scan_reference(
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
) -> Tensor | tuple[Tensor, Tensor]:
    """Sequential selective scan.

    Args:
        u: Input ``(Bt, D, L)``.
        delta: Step sizes ``(Bt, D, L)``.
        A: State matrix ``(D, N)``, real.
        B: Input projection, constant ``(D, N)`` or variable ``(Bt, N, L)`` / ``(Bt, G, N, L)``.
        C: Output projection, like ``B``.
        D: Optional skip ``(D,)``.
        z: Optional gate ``(Bt, D, L)``; the output is multiplied by ``silu(z)``.
        delta_bias: Optional ``(D,)`` added to ``delta`` before the softplus.
        delta_softplus: Apply softplus to ``delta``.
        return_last_state: Also return the final state ``(Bt, D, N)`` in fp32.

    Returns:
        ``out`` ``(Bt, D, L)`` in ``u``'s dtype, and the last state if requested.
    """
    dtype_in = u.dtype
    u32 = u.float()
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    Bt, Dm, L = u32.shape
    A32 = A.float()
    N = A32.shape[1]
    B = B.unsqueeze(1) if B.dim() == 3 else B  # (Bt, N, L) -> (Bt, 1, N, L)
    C = C.unsqueeze(1) if C.dim() == 3 else C
    var_B = B.dim() == 4
    var_C = C.dim() == 4
    B32 = B.float()
    C32 = C.float()
    h = u32.new_zeros(Bt, Dm, N)
    ys = []
    for i in range(L):
        dA = torch.exp(dt[:, :, i, None] * A32)  # (Bt, D, N)
        Bi = _expand_groups(B32[..., i], Dm) if var_B else B32[None]
        h = dA * h + (dt[:, :, i] * u32[:, :, i])[..., None] * Bi
        Ci = _expand_groups(C32[..., i], Dm) if var_C else C32[None]
        ys.append((h * Ci).sum(-1))
    y = torch.stack(ys, dim=-1) if L > 0 else u32.new_zeros(Bt, Dm, 0)
    out = y if D is None else y + D.float()[:, None] * u32
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out

"""The reference selective scan: a sequential loop over the sequence, the oracle of every test.

Semantics are mamba-ssm's ``selective_scan_ref`` (see ``docs/backends.md``): all internal math
in fp32 (fp64 for float64 inputs), output cast to the input dtype, gradients supplied by autograd.

The loop is written to be a fair baseline, not a strawman: per-step slices come from
``unbind`` (so the autograd graph stays O(L), where indexing ``x[..., i]`` would make the
backward O(L²)), groups broadcast through views instead of ``repeat_interleave``, and the
decays ``exp(δ·A)`` are computed in one vectorised call before the loop (as mamba-ssm's
``selective_scan_ref`` does).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .prologue import compute_dtype, delta_prologue


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

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.ScanFn`. Unlike the registered
    function, it may be called directly (its optional arguments have defaults; ``B``/``C`` may also be
    ``(Bt, N, L)``).
    """
    dtype_in = u.dtype
    ct = compute_dtype(dtype_in)
    u32 = u.to(ct)
    dt = delta_prologue(delta, delta_bias, delta_softplus, ct)
    Bt, Dm, L = u32.shape
    A32 = A.to(ct)
    N = A32.shape[1]
    B = B.unsqueeze(1) if B.dim() == 3 else B  # (Bt, N, L) -> (Bt, 1, N, L)
    C = C.unsqueeze(1) if C.dim() == 3 else C
    var_B, var_C = B.dim() == 4, C.dim() == 4
    # Work in (Bt, G, D/G, N): the group of channel d is d // (D/G), a plain view of D.
    G = B.shape[1] if var_B else (C.shape[1] if var_C else 1)
    if var_B and var_C and B.shape[1] != C.shape[1]:
        G = Dm  # different group counts: expand both to one group per channel
    Dg = Dm // G

    def steps_var(M: Tensor) -> list[Tensor]:
        M = M.to(ct)
        Gm = M.shape[1]
        if Gm != G:  # only when B and C have different group counts: one group per channel
            M = M.repeat_interleave(Dm // Gm, dim=1)
        return list(M.unsqueeze(2).unbind(-1))  # L x (Bt, G, 1, N)

    A_g = A32.view(G, Dg, N)
    B_steps = steps_var(B) if var_B else None
    C_steps = steps_var(C) if var_C else None
    B_const = None if var_B else B.to(ct).view(G, Dg, N)
    C_const = None if var_C else C.to(ct).view(G, Dg, N)
    dt_g = dt.view(Bt, G, Dg, L)
    dtu_steps = (dt_g * u32.view(Bt, G, Dg, L)).unbind(-1)  # L x (Bt, G, Dg)
    dA_steps = torch.exp(dt_g.unsqueeze(-1) * A_g.unsqueeze(2)).unbind(3) if L > 0 else []  # L x (Bt,G,Dg,N)
    h = u32.new_zeros(Bt, G, Dg, N)
    ys = []
    for i in range(L):
        Bi = B_steps[i] if var_B else B_const
        h = dA_steps[i] * h + dtu_steps[i].unsqueeze(-1) * Bi
        Ci = C_steps[i] if var_C else C_const
        ys.append((h * Ci).sum(-1))
    y = torch.stack(ys, dim=-1).reshape(Bt, Dm, L) if L > 0 else u32.new_zeros(Bt, Dm, 0)
    out = y if D is None else y + D.to(ct)[:, None] * u32
    if z is not None:
        out = out * F.silu(z.to(ct))
    out = out.to(dtype_in)
    return (out, h.reshape(Bt, Dm, N)) if return_last_state else out

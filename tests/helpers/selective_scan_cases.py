"""Shared helpers of the selective-scan tests: inputs as in mamba-ssm's tests, tolerances (ops.md §3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vision_ssm.ops import selective_scan_reference

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

# ops.md §3: output tolerances per input dtype (rtol, atol)
TOL = {
    torch.float32: (6e-4, 2e-3),
    torch.float16: (3e-3, 5e-3),
    torch.bfloat16: (3e-2, 5e-2),
    torch.float64: (1e-9, 1e-9),
}


@dataclass(frozen=True)
class Case:
    L: int
    N: int = 4
    G: int = 1
    var_B: bool = True
    var_C: bool = True
    has_D: bool = True
    has_z: bool = True
    has_bias: bool = True
    softplus: bool = True
    last: bool = True
    Bt: int = 2
    D: int = 8

    def id(self) -> str:
        f = "".join(c for c, on in zip("BCDzbsl", (self.var_B, self.var_C, self.has_D, self.has_z,
                                                     self.has_bias, self.softplus, self.last)) if on)
        return f"L{self.L}-N{self.N}-G{self.G}-{f or 'none'}"


def make_inputs(case: Case, dtype: torch.dtype, seed: int = 0, device: str = "cpu") -> dict:
    """Inputs drawn like mamba-ssm's test: A=-0.5·rand, delta=0.5·rand, delta_bias=0.5·rand, rest randn.

    ``u, delta, z`` and variable ``B, C`` have ``dtype``; ``A, D, delta_bias`` and constant
    ``B, C`` are float32 (float64 when ``dtype`` is float64), as in mamba-ssm.
    """
    g = torch.Generator().manual_seed(seed)
    wt = torch.float64 if dtype == torch.float64 else torch.float32
    Bt, D, L, N, G = case.Bt, case.D, case.L, case.N, case.G

    def rn(*s, dt=dtype):
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dt)

    def ru(*s, dt=dtype):
        return torch.rand(*s, generator=g, dtype=torch.float64).to(dt)

    x = dict(
        u=rn(Bt, D, L),
        delta=(0.5 * ru(Bt, D, L)).to(dtype),
        A=(-0.5 * ru(D, N, dt=wt)),
        B=rn(Bt, G, N, L) if case.var_B else rn(D, N, dt=wt),
        C=rn(Bt, G, N, L) if case.var_C else rn(D, N, dt=wt),
        D=rn(D, dt=wt) if case.has_D else None,
        z=rn(Bt, D, L) if case.has_z else None,
        delta_bias=(0.5 * ru(D, dt=wt)) if case.has_bias else None,
    )
    return {k: (None if v is None else v.to(device)) for k, v in x.items()}


def run(fn, inputs: dict, case: Case, grads: bool = True, seed: int = 1, grad_last: bool = True):
    """Run ``fn`` (a backend or the public op) and return ``(out, last, {name: grad})``.

    The loss is ``Σ out·gout (+ Σ last·glast if grad_last)`` with fixed random ``gout``, ``glast``.
    """
    leaves = {k: (v.detach().clone().requires_grad_(grads) if v is not None else None) for k, v in inputs.items()}
    res = fn(**leaves, delta_softplus=case.softplus, return_last_state=case.last)
    out, last = res if case.last else (res, None)
    if not grads:
        return out.detach(), None if last is None else last.detach(), {}
    g = torch.Generator().manual_seed(seed)
    gout = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype)
    loss = (out.float() * gout.float()).sum()
    if last is not None and grad_last:
        glast = torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.device, last.dtype)
        loss = loss + (last * glast).sum()
    names = [k for k, v in leaves.items() if v is not None]
    gr = torch.autograd.grad(loss, [leaves[k] for k in names])
    return out.detach(), None if last is None else last.detach(), dict(zip(names, gr))


def grad_tol(name: str, dtype: torch.dtype, has_z: bool) -> tuple[float, float]:
    """mamba-ssm's gradient tolerances (ops.md §3)."""
    rtol, atol = TOL[dtype]
    rtolw = atolw = 1e-3 if dtype != torch.float64 else 1e-9
    if has_z:
        rtolw, atolw = max(rtolw, rtol), max(atolw, atol)
    return {
        "u": (2 * rtol, 2 * atol),
        "delta": (5 * rtol, 10 * atol),
        "A": (rtolw, 5 * atolw),
        "B": (rtol, atol),
        "C": (rtol, atol),
        "D": (rtolw, atolw),
        "z": (rtolw, atolw),
        "delta_bias": (rtolw, atolw),
    }[name]


def check_against_reference(fn, case: Case, dtype: torch.dtype, grads: bool = True, seed: int = 0,
                            device: str = "cpu", grad_last: bool = True) -> None:
    """Assert ``fn`` matches :func:`selective_scan_reference` within the ops.md tolerances.

    ``grad_last=False`` leaves the last state out of the loss (for backends that, like
    mamba-ssm, do not propagate its gradient).
    """
    inputs = make_inputs(case, dtype, seed, device)
    out, last, gr = run(fn, inputs, case, grads, grad_last=grad_last)
    out_r, last_r, gr_r = run(selective_scan_reference, inputs, case, grads, grad_last=grad_last)
    rtol, atol = TOL[dtype]
    assert out.dtype == dtype and out.shape == (case.Bt, case.D, case.L)
    torch.testing.assert_close(out, out_r, rtol=rtol, atol=atol)
    if case.last:
        assert last.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        torch.testing.assert_close(last, last_r, rtol=rtol, atol=atol)
    for name, g_r in gr_r.items():
        r, a = grad_tol(name, dtype, case.has_z)
        assert gr[name].dtype == g_r.dtype, name
        torch.testing.assert_close(gr[name], g_r, rtol=r, atol=a, msg=lambda m, n=name: f"grad {n}: {m}")

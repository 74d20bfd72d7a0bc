"""CPU check of the mamba_ssm adapter's plumbing against a stand-in for ``selective_scan_cuda``.

The stand-in follows the documented calling convention (positional ``fwd``/``bwd`` arguments,
``[out, x(, out_z)]`` and ``[du, ddelta, dA, dB, dC, dD, ddelta_bias(, dz)]`` returns, last state
in ``x[:, :, -1, 1::2]``) and computes with the reference loop, so these tests catch argument
order, return parsing and dtype handling errors without a GPU. The real kernel is tested by
``test_selective_scan_mamba_ssm.py`` (``pytest -m gpu``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from selective_scan_cases import Case, check_against_reference

from vision_ssm.ops import selective_scan_reference
from vision_ssm.ops.mamba_ssm import scan as mamba_ssm_adapter


class FakeExt:
    """Reference-loop implementation of ``selective_scan_cuda.fwd/.bwd``."""

    calls: list[str] = []

    @staticmethod
    def fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        assert A.dtype == torch.float32 and (D is None or D.dtype == torch.float32)
        assert delta.dtype == u.dtype and (B.dim() == 2 or B.dtype == u.dtype)
        assert u.stride(-1) == 1 and delta.stride(-1) == 1
        # the kernel takes n_groups from B alone and checks a variable C against it
        n_groups = B.shape[1] if B.dim() == 4 else 1
        assert C.dim() == 2 or C.shape[1] == n_groups, f"C groups {C.shape[1]} != n_groups {n_groups}"
        FakeExt.calls.append("fwd")
        out, last = selective_scan_reference(u, delta, A, B, C, D, None, delta_bias, delta_softplus, True)
        Bt, Dm, N = last.shape
        x = torch.zeros(Bt, Dm, 2, 2 * N)
        x[:, :, -1, 1::2] = last
        res = [out, x]
        if z is not None:
            res.append((out.float() * F.silu(z.float())).to(u.dtype))
        return res

    @staticmethod
    def bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus, recompute_out_z):
        assert dz is None and recompute_out_z is False
        assert (out is None) == (z is None)
        FakeExt.calls.append("bwd")
        ins = [t if t is None else t.detach().requires_grad_() for t in (u, delta, A, B, C, D, z, delta_bias)]
        with torch.enable_grad():
            y = selective_scan_reference(*ins, delta_softplus)
            want = [t for t in ins if t is not None]
            gr = iter(torch.autograd.grad(y, want, dout))
        g = [None if t is None else next(gr) for t in ins]
        du, ddelta, dA, dB, dC, dD, dz_, ddb = g
        res = [du, ddelta, dA, dB.float() if B.dim() == 4 else dB, dC.float() if C.dim() == 4 else dC,
               dD if dD is not None else torch.empty(0), ddb if ddb is not None else torch.empty(0)]
        if z is not None:
            res.append(dz_)
        return res


def _adapter(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False):
    out, last = mamba_ssm_adapter.MambaSSMScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                       return_last_state)
    return (out, last) if return_last_state else out


def test_adapter_plumbing_matches_reference(monkeypatch):
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: FakeExt)
    FakeExt.calls.clear()
    for case, dtype in [
        (Case(L=20, N=3, G=2), torch.float32),
        (Case(L=9, N=2, G=1, var_B=False, has_z=False, has_D=False), torch.float32),
        (Case(L=12, N=4, G=2, var_C=False, has_bias=False, softplus=False), torch.bfloat16),
    ]:
        check_against_reference(_adapter, case, dtype, grad_last=False)
    assert "fwd" in FakeExt.calls and "bwd" in FakeExt.calls


def test_adapter_last_state_is_not_differentiable(monkeypatch):
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: FakeExt)
    u = torch.randn(1, 2, 5, requires_grad=True)
    out, last = _adapter(u, torch.rand(1, 2, 5), -torch.rand(2, 3), torch.randn(1, 1, 3, 5),
                         torch.randn(1, 1, 3, 5), return_last_state=True)
    assert out.requires_grad and not last.requires_grad and last.shape == (1, 2, 3)


def test_mixed_b_c_layouts_are_matched_for_the_kernel(monkeypatch):
    """Constant B with a multi-group variable C, or different group counts, reach the kernel legally."""
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: FakeExt)
    g = torch.Generator().manual_seed(0)
    Bt, Dm, L, N = 2, 8, 11, 3
    for b_shape, c_shape in [((Dm, N), (Bt, 2, N, L)), ((Bt, 2, N, L), (Bt, 4, N, L)), ((Bt, 4, N, L), (Bt, 1, N, L))]:
        u = torch.randn(Bt, Dm, L, generator=g, requires_grad=True)
        dt = torch.rand(Bt, Dm, L, generator=g)
        A = -torch.rand(Dm, N, generator=g)
        B = torch.randn(*b_shape, generator=g, requires_grad=True)
        C = torch.randn(*c_shape, generator=g, requires_grad=True)
        B2, C2 = mamba_ssm_adapter._match_groups(B, C, Bt, Dm, L)
        out = _adapter(u, dt, A, B2, C2, delta_softplus=True)
        ref = selective_scan_reference(u, dt, A, B, C, delta_softplus=True)
        torch.testing.assert_close(out, ref)
        go = torch.randn_like(out)
        got = torch.autograd.grad(out, (u, B, C), go)
        want = torch.autograd.grad(ref, (u, B, C), go)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class _NoEntryPoints:
    pass


class _Raising:
    @staticmethod
    def fwd(*args):
        raise RuntimeError("selective_scan_cuda is not installed")

    bwd = fwd


def _missing():
    raise ImportError("No module named 'selective_scan_cuda'")


def test_probe_reports_why_the_compiled_scan_cannot_run(monkeypatch):
    """mamba-ssm's main branch imports without its Mamba-1 scan (MAMBA_KEEP_CUDA_BUILD): caught at probe time."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", _missing)
    assert "MAMBA_KEEP_CUDA_BUILD=TRUE" in mamba_ssm_adapter.probe("cpu")
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: _NoEntryPoints)
    assert "no fwd/bwd entry points" in mamba_ssm_adapter.probe("cpu")
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: _Raising)
    reason = mamba_ssm_adapter.probe("cpu")
    assert "failed on this GPU" in reason and "MAMBA_KEEP_CUDA_BUILD=TRUE" in reason
    monkeypatch.setattr(mamba_ssm_adapter, "_ext", lambda: FakeExt)
    assert mamba_ssm_adapter.probe("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mamba_ssm_adapter.probe("cpu") == "no CUDA device"

"""Every CPU backend against the reference loop (outputs and all gradients), ops.md §3 tolerances."""
from __future__ import annotations

import functools

import pytest
import torch
from selective_scan_cases import Case, check_against_reference, make_inputs, run

from vision_ssm.ops import available_backends, selective_scan, selective_scan_reference
from vision_ssm.ops.chunked import scan as chunked_mod

CPU_BACKENDS = [b for b in available_backends("cpu") if b != "reference"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def public(backend):
    return functools.partial(selective_scan, backend=backend)


# A covering subset of L x N x G x features (the full product would be ~10^4 cases).
CASES = [
    Case(L=1, N=1, G=1),
    Case(L=1, N=4, G=2, var_B=False, var_C=False, has_z=False, last=False),
    Case(L=7, N=4, G=4, has_D=False, has_bias=False, softplus=False),
    Case(L=7, N=16, G=1, var_B=False, has_z=False),
    Case(L=64, N=1, G=2, var_C=False, last=False),
    Case(L=64, N=16, G=4, has_bias=False),
    Case(L=257, N=4, G=1, has_D=False, has_z=False, softplus=False, last=False),
    Case(L=257, N=1, G=4, var_B=False, var_C=False),
    Case(L=257, N=16, G=2),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=Case.id)
def test_matches_reference(backend, dtype, case):
    check_against_reference(public(backend), case, dtype)


# L = 3136 (a 56x56 map): long sequences, several chunks; a few shapes, not the full product.
LONG_CASES = [
    (Case(L=3136, N=1, G=4, Bt=1, D=8), torch.float32, True),
    (Case(L=3136, N=16, G=2, Bt=1, D=4, var_B=False, has_z=False), torch.float32, True),
    (Case(L=3136, N=4, G=1, Bt=1, D=4), torch.bfloat16, False),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case,dtype,grads", LONG_CASES, ids=lambda x: x.id() if isinstance(x, Case) else str(x))
def test_matches_reference_long(backend, case, dtype, grads):
    check_against_reference(public(backend), case, dtype, grads=grads)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_three_dim_bc_equals_one_group(backend):
    case = Case(L=33, N=4, G=1)
    x = make_inputs(case, torch.float32)
    y4 = selective_scan(**x, backend=backend)
    x3 = dict(x, B=x["B"][:, 0], C=x["C"][:, 0])
    y3 = selective_scan(**x3, backend=backend)
    torch.testing.assert_close(y3, y4)
    torch.testing.assert_close(y4, selective_scan(**x, backend="reference"), rtol=6e-4, atol=2e-3)


@pytest.mark.parametrize("chunk", [1, 3, 5, 64])
def test_chunked_chunk_sizes(chunk):
    """Chunk sizes that do not divide L (multiple chunks + padded tail) and a single chunk."""
    case = Case(L=23, N=3, G=2)
    check_against_reference(functools.partial(chunked_mod.selective_scan_chunked, chunk_size=chunk),
                            case, torch.float64)


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba not installed")
@pytest.mark.parametrize("chunk", [1, 5])
def test_numba_chunk_sizes(monkeypatch, chunk):
    from vision_ssm.ops.numba import core, selective_scan_numba

    monkeypatch.setattr(core, "CHUNK", chunk)
    check_against_reference(selective_scan_numba, Case(L=23, N=3, G=2), torch.float64)


def _broken_carry(P, h_loc):
    """Off-by-one carry: chunk c starts from chunk c-2's end instead of c-1's."""
    h0 = torch.zeros_like(h_loc)
    h = torch.zeros_like(h_loc[:, :, 0])
    prev = h
    for c in range(P.shape[2]):
        h0[:, :, c] = prev
        prev, h = h, torch.addcmul(h_loc[:, :, c], P[:, :, c], h)
    return h0, h


def test_broken_chunk_carry_is_caught(monkeypatch):
    """The parity check must fail for a chunk carry with an off-by-one bug."""
    fn = functools.partial(chunked_mod.selective_scan_chunked, chunk_size=5)
    case = Case(L=23, N=3, G=2, has_z=False)
    check_against_reference(fn, case, torch.float32)  # the real one passes
    monkeypatch.setattr(chunked_mod, "_carry", _broken_carry)
    with pytest.raises(AssertionError):
        check_against_reference(fn, case, torch.float32, grads=False)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backward_is_deterministic(backend):
    case = Case(L=70, N=4, G=2)
    x = make_inputs(case, torch.float32)
    _, _, g1 = run(public(backend), x, case)
    _, _, g2 = run(public(backend), x, case)
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k


@pytest.mark.parametrize("backend", CPU_BACKENDS + ["reference"])
def test_autocast_bf16_finite(backend):
    """Under CPU autocast (bf16 activations from Linear layers) outputs and grads stay finite."""
    torch.manual_seed(0)
    Bt, Dm, L, N = 2, 8, 40, 4
    proj = torch.nn.Linear(6, Dm + Dm + 2 * N)
    A_log = torch.nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(Dm, 1))
    Dp = torch.nn.Parameter(torch.ones(Dm))
    bias = torch.nn.Parameter(torch.full((Dm,), -2.0))
    feats = torch.randn(Bt, L, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = proj(feats).transpose(1, 2)  # (Bt, 2D + 2N, L), bf16
        assert h.dtype == torch.bfloat16
        u, dt, B, C = h.split([Dm, Dm, N, N], dim=1)
        out = selective_scan(u.contiguous(), dt.contiguous(), -torch.exp(A_log), B.contiguous(), C.contiguous(),
                             Dp, None, bias, True, backend=backend)
        loss = out.float().square().mean()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    loss.backward()
    for p in (proj.weight, proj.bias, A_log, Dp, bias):
        assert p.grad is not None and torch.isfinite(p.grad).all()
    ref = selective_scan_reference(u.detach(), dt.detach(), -torch.exp(A_log.detach()), B.detach(), C.detach(),
                                   Dp.detach(), None, bias.detach(), True)
    torch.testing.assert_close(out.detach(), ref, rtol=3e-2, atol=5e-2)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_strong_decay_stays_finite(backend):
    """|A|·δ·T far beyond 88 (where an exp(-cumsum) shortcut overflows) stays exact and finite."""
    case = Case(L=300, N=4, G=1, has_z=False)
    x = make_inputs(case, torch.float32)
    x["A"] = x["A"] * 200.0 - 20.0  # A in [-120, -20]
    x["delta"] = x["delta"] * 10.0  # softplus(δ + bias) up to ~5.5
    out, last, gr = run(public(backend), x, case)
    out_r, last_r, gr_r = run(selective_scan_reference, x, case)
    assert torch.isfinite(out).all() and torch.isfinite(last).all()
    torch.testing.assert_close(out, out_r, rtol=6e-4, atol=2e-3)
    for k in gr_r:
        assert torch.isfinite(gr[k]).all(), k


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba not installed")
def test_numba_unfused_softplus_path(monkeypatch):
    """The PyTorch-prologue variant (FUSE_SOFTPLUS=False) gives the same results."""
    from vision_ssm.ops.numba import scan

    monkeypatch.setattr(scan, "FUSE_SOFTPLUS", False)
    check_against_reference(scan.selective_scan_numba, Case(L=40, N=4, G=2), torch.float32)


@pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba not installed")
def test_numba_backward_independent_of_thread_count():
    import numba

    case = Case(L=70, N=4, G=2, Bt=2, D=8)
    x = make_inputs(case, torch.float32)
    n0 = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _, _, g1 = run(public("numba"), x, case)
        numba.set_num_threads(n0)
        _, _, g2 = run(public("numba"), x, case)
    finally:
        numba.set_num_threads(n0)
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k

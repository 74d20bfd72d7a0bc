"""float64 gradcheck of every CPU backend's custom backward, and hypothesis-driven random shapes."""
from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from selective_scan_cases import Case, check_against_reference, make_inputs

from vision_ssm.ops import available_backends, selective_scan
from vision_ssm.ops.chunked.scan import selective_scan_chunked

CPU_BACKENDS = [b for b in available_backends("cpu") if b != "reference"]


def _small_chunks(backend, monkeypatch):
    """Force several chunks (with a ragged tail) on tiny sequences."""
    if backend == "numba":
        from vision_ssm.ops.numba import core, selective_scan_numba

        monkeypatch.setattr(core, "CHUNK", 4)
        return selective_scan_numba
    return functools.partial(selective_scan_chunked, chunk_size=4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("var_B,var_C", [(False, True), (True, False)])
def test_gradcheck_float64(backend, var_B, var_C, monkeypatch):
    fn = _small_chunks(backend, monkeypatch)
    case = Case(L=9, N=2, G=2, Bt=2, D=4, var_B=var_B, var_C=var_C)
    x = make_inputs(case, torch.float64)
    names = list(x)
    leaves = [x[k].requires_grad_() for k in names]

    def f(*args):
        out, last = fn(**dict(zip(names, args)), delta_softplus=True, return_last_state=True)
        return out, last

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_through_public_op(backend):
    """The public entry (validation + dispatch) is differentiable end to end in float64."""
    case = Case(L=6, N=3, G=1, Bt=1, D=2, has_z=False, last=False)
    x = make_inputs(case, torch.float64)
    names = [k for k, v in x.items() if v is not None]
    leaves = [x[k].requires_grad_() for k in names]

    def f(*args):
        return selective_scan(**dict(zip(names, args)), delta_softplus=True, backend=backend)

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    backend=st.sampled_from(CPU_BACKENDS),
    Bt=st.integers(1, 2),
    Dg=st.integers(1, 3),
    G=st.sampled_from([1, 2, 4]),
    L=st.integers(1, 90),
    N=st.integers(1, 6),
    flags=st.lists(st.booleans(), min_size=8, max_size=8),
    chunk=st.integers(1, 24),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_reference(backend, Bt, Dg, G, L, N, flags, chunk, seed):
    var_B, var_C, has_D, has_z, has_bias, softplus, last, _ = flags
    case = Case(L=L, N=N, G=G, Bt=Bt, D=Dg * G, var_B=var_B, var_C=var_C, has_D=has_D, has_z=has_z,
                has_bias=has_bias, softplus=softplus, last=last)
    if backend == "chunked":
        fn = functools.partial(selective_scan_chunked, chunk_size=chunk)
    else:
        fn = functools.partial(selective_scan, backend=backend)
    check_against_reference(fn, case, torch.float64, seed=seed)

"""GPU tests (``pytest -m gpu``): the mamba_ssm adapter and the chunked backend on CUDA vs the reference.

Skipped unless a CUDA device is present; the mamba_ssm tests also need mamba-ssm's compiled
``selective_scan_cuda`` extension (``pip install "vision-ssm[cuda]" --no-build-isolation``).
"""
from __future__ import annotations

import functools
import importlib.util

import pytest
import torch
from selective_scan_cases import Case, check_against_reference, make_inputs, run

from vision_ssm.ops import available_backends, selective_scan

pytestmark = pytest.mark.gpu

HAS_CUDA = torch.cuda.is_available()
HAS_EXT = HAS_CUDA and importlib.util.find_spec("selective_scan_cuda") is not None
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
needs_ext = pytest.mark.skipif(not HAS_EXT, reason="needs CUDA and mamba-ssm's selective_scan_cuda")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
CASES = [
    Case(L=1, N=1, G=1),
    Case(L=7, N=4, G=4, has_D=False, has_bias=False, softplus=False),
    Case(L=64, N=16, G=2, var_B=False, has_z=False),
    Case(L=257, N=4, G=1, var_C=False),
    Case(L=257, N=16, G=4, var_B=False, var_C=False, last=False),
    Case(L=3136, N=16, G=4, D=16),
    Case(L=4396, N=8, G=2, D=8),  # > 2048: several chunks inside the CUDA kernel
]


@needs_ext
def test_mamba_ssm_is_available_on_cuda():
    assert "mamba_ssm" in available_backends("cuda")


@needs_ext
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=Case.id)
def test_mamba_ssm_matches_reference(case, dtype):
    # mamba-ssm does not propagate the gradient of last_state, so it stays out of the loss
    check_against_reference(functools.partial(selective_scan, backend="mamba_ssm"), case, dtype,
                            device="cuda", grad_last=False)


@needs_ext
def test_mamba_ssm_three_dim_bc():
    case = Case(L=40, N=4, G=1)
    x = make_inputs(case, torch.float32, device="cuda")
    y4 = selective_scan(**x, backend="mamba_ssm")
    y3 = selective_scan(**dict(x, B=x["B"][:, 0], C=x["C"][:, 0]), backend="mamba_ssm")
    torch.testing.assert_close(y3, y4)


@needs_ext
def test_mamba_ssm_last_state_has_no_gradient():
    case = Case(L=16, N=4, G=1)
    x = {k: v.requires_grad_() for k, v in make_inputs(case, torch.float32, device="cuda").items()}
    out, last = selective_scan(**x, return_last_state=True, backend="mamba_ssm")
    assert not last.requires_grad and out.requires_grad


@needs_ext
def test_mamba_ssm_under_autocast():
    case = Case(L=50, N=4, G=2)
    x = make_inputs(case, torch.bfloat16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, _, grads = run(functools.partial(selective_scan, backend="mamba_ssm"), x, case, grad_last=False)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads.values())


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]], ids=Case.id)
def test_chunked_on_cuda_matches_reference(case, dtype):
    check_against_reference(functools.partial(selective_scan, backend="chunked"), case, dtype, device="cuda")

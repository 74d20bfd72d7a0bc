"""The argument checks of :func:`vision_ssm.ops.selective_scan` give clear errors."""
from __future__ import annotations

import pytest
import torch

from vision_ssm.ops import selective_scan

Bt, Dm, L, N = 2, 4, 5, 3


def good(**over):
    x = dict(
        u=torch.randn(Bt, Dm, L),
        delta=torch.rand(Bt, Dm, L),
        A=-torch.rand(Dm, N),
        B=torch.randn(Bt, N, L),
        C=torch.randn(Bt, N, L),
    )
    x.update(over)
    return x


def test_good_inputs_run():
    assert selective_scan(**good(), backend="reference").shape == (Bt, Dm, L)


@pytest.mark.parametrize(
    "over,pattern",
    [
        (dict(u=torch.randn(Dm, L)), r"u must be \(B, D, L\)"),
        (dict(delta=torch.rand(Bt, Dm, L + 1)), r"delta must match u"),
        (dict(delta=torch.rand(Bt, Dm, L, dtype=torch.float16)), r"delta dtype torch.float16 must equal u dtype"),
        (dict(u=torch.randint(0, 3, (Bt, Dm, L)), delta=torch.randint(0, 3, (Bt, Dm, L))), r"u dtype must be"),
        (dict(A=-torch.rand(Dm + 1, N)), r"A must be \(D, N\) with D=4"),
        (dict(A=-torch.rand(Dm)), r"A must be \(D, N\)"),
        (dict(A=torch.ones(Dm, N, dtype=torch.int64)), r"A must be a float tensor"),
        (dict(B=torch.randn(Bt, N + 1, L)), r"variable B must be \(B, N, L\)"),
        (dict(C=torch.randn(Bt, N, L - 1)), r"variable C must be"),
        (dict(B=torch.randn(Dm, N + 2)), r"constant B must be \(D, N\)=\(4, 3\)"),
        (dict(B=torch.randn(Bt, 3, N, L)), r"B has 3 groups, which does not divide D=4"),
        (dict(C=torch.randn(Bt, 1, 1, N, L)), r"C must be \(D, N\), \(B, N, L\) or \(B, G, N, L\)"),
        (dict(D=torch.randn(Dm + 1)), r"D must be \(4,\)"),
        (dict(delta_bias=torch.randn(1)), r"delta_bias must be \(4,\)"),
        (dict(z=torch.randn(Bt, Dm, L + 2)), r"z must match u"),
        (dict(z=torch.randn(Bt, Dm, L, dtype=torch.bfloat16)), r"z dtype torch.bfloat16 must equal u dtype"),
        (dict(delta=torch.rand(Bt, Dm, L, device="meta")), r"delta is on meta but u is on cpu"),
        (dict(A=-torch.rand(Dm, N, device="meta")), r"A is on meta"),
    ],
)
def test_value_errors(over, pattern):
    with pytest.raises(ValueError, match=pattern):
        selective_scan(**good(**over), backend="reference")


def test_complex_A_not_implemented():
    A = torch.complex(-torch.rand(Dm, N), torch.rand(Dm, N))
    with pytest.raises(NotImplementedError, match="complex A"):
        selective_scan(**good(A=A))


def test_complex_B_not_implemented():
    B = torch.complex(torch.randn(Bt, N, L), torch.randn(Bt, N, L))
    with pytest.raises(NotImplementedError, match="complex B"):
        selective_scan(**good(B=B))


def test_non_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        selective_scan(**good(u=[[1.0]]))


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown selective-scan backend 'nope'.*'chunked'.*'reference'"):
        selective_scan(**good(), backend="nope")


def test_gpu_backend_on_cpu_tensors_is_a_runtime_error():
    with pytest.raises(RuntimeError, match=r"'mamba_ssm' runs on \['cuda'\].*inputs are on 'cpu'"):
        selective_scan(**good(), backend="mamba_ssm")

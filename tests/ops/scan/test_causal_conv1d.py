"""``vision_ssm.ops.causal_conv1d``: causal-conv1d's signature, equal to a naive loop, errors, lazy import."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_ssm.ops import causal_conv1d

# the module itself (the package exports the function under the same name)
cc_module = importlib.import_module("vision_ssm.ops.scan.causal_conv1d")


def _naive(x, weight, bias, activation):
    """out[b, d, l] = bias[d] + sum_k weight[d, k] * x[b, d, l - W + 1 + k] (zeros before the start)."""
    Bt, Dm, L = x.shape
    W = weight.shape[1]
    out = torch.zeros_like(x)
    for b in range(Bt):
        for d in range(Dm):
            for t in range(L):
                acc = 0.0 if bias is None else float(bias[d])
                for k in range(W):
                    s = t - (W - 1) + k
                    if s >= 0:
                        acc += float(weight[d, k]) * float(x[b, d, s])
                out[b, d, t] = acc
    return out if activation is None else F.silu(out)


@settings(max_examples=25, deadline=None)
@given(Bt=st.integers(1, 2), Dm=st.integers(1, 5), L=st.integers(1, 13), W=st.integers(1, 6),
       bias=st.booleans(), activation=st.sampled_from([None, "silu", "swish"]), seed=st.integers(0, 2**16))
def test_matches_naive_loop(Bt, Dm, L, W, bias, activation, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(Bt, Dm, L, generator=g, dtype=torch.float64)
    w = torch.randn(Dm, W, generator=g, dtype=torch.float64)
    b = torch.randn(Dm, generator=g, dtype=torch.float64) if bias else None
    torch.testing.assert_close(causal_conv1d(x, w, b, activation), _naive(x, w, b, activation))


def test_equals_trimmed_depthwise_conv_layer_and_is_causal():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(2, 6, 17)
    y = causal_conv1d(x, conv.weight[:, 0], conv.bias, "silu")
    torch.testing.assert_close(y, F.silu(conv(x)[..., :17]))
    x2 = x.clone()
    x2[..., 9:] += 1.0  # change the future: the past outputs stay
    torch.testing.assert_close(causal_conv1d(x2, conv.weight[:, 0], conv.bias)[..., :9],
                               causal_conv1d(x, conv.weight[:, 0], conv.bias)[..., :9])


def test_strided_input_and_gradients():
    x = torch.randn(2, 9, 3, dtype=torch.float64).transpose(1, 2).requires_grad_()  # (2, 3, 9), non-contiguous
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a, activation="silu"), (x, w, b))


def test_keeps_dtype():
    x = torch.randn(1, 2, 5, dtype=torch.bfloat16)
    assert causal_conv1d(x, torch.randn(2, 3)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    "x,w,b,act,err,match",
    [
        (torch.zeros(2, 3), torch.zeros(3, 4), None, None, ValueError, "x must be"),
        (torch.zeros(1, 3, 5), torch.zeros(4, 4), None, None, ValueError, "weight must be"),
        (torch.zeros(1, 3, 5), torch.zeros(3, 1, 4), None, None, ValueError, "weight must be"),
        (torch.zeros(1, 3, 5), torch.zeros(3, 0), None, None, ValueError, "width"),
        (torch.zeros(1, 3, 5), torch.zeros(3, 4), torch.zeros(2), None, ValueError, "bias"),
        (torch.zeros(1, 3, 5), torch.zeros(3, 4), None, "relu", NotImplementedError, "activation"),
    ],
)
def test_errors(x, w, b, act, err, match):
    with pytest.raises(err, match=match):
        causal_conv1d(x, w, b, act)


def test_no_kernel_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "causal_conv1d", None)
    monkeypatch.setattr(cc_module, "_kernel", [])
    assert cc_module._load_kernel() is None
    assert not cc_module.causal_conv1d_kernel_available()


def test_import_never_loads_the_package():
    code = ("import sys, torch, vision_ssm, vision_ssm.ops as o; "
            "o.causal_conv1d(torch.randn(1, 2, 5), torch.randn(2, 4)); "
            "sys.exit(1 if 'causal_conv1d' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

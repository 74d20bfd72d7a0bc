"""The 1-D Mamba mixer: mamba-ssm's state dict, the golden fixture on every scan backend, causality, init."""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _mamba_fixture import check_fixture, load_mamba_fixture
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import REPO

from vision_ssm.layers import Mamba

HERE = Path(__file__).resolve().parent
CPU_BACKENDS = ("reference", "chunked", "numba")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matches_upstream_fixture(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    assert check_fixture(backend) <= 1e-5


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_interpreter_cases():
    """The fixture, the gradients and the MambaAlign blocks on the Triton kernel (``interp_mamba_cases.py``)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
           "-o", "python_files=interp_*cases.py", "--rootdir", str(REPO), str(HERE / "interp_mamba_cases.py")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "3 passed" in r.stdout, r.stdout[-2000:]


def test_state_dict_keys_and_shapes_equal_mamba_ssm():
    _, sd, _ = load_mamba_fixture()
    m = Mamba(16, d_state=8, d_conv=4, expand=2)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert set(Mamba(16, bias=True).state_dict()) >= {"in_proj.bias", "out_proj.bias"}
    assert "conv1d.bias" not in Mamba(16, conv_bias=False).state_dict()


def test_init_uses_the_mamba_initialisation():
    m = Mamba(32, d_state=6, dt_min=0.01, dt_max=0.05)
    assert m.dt_rank == 2 and m.d_inner == 64
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1, 7.0)).expand(64, 6))
    torch.testing.assert_close(m.D, torch.ones(64))
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 0.01 - 1e-6 and dt.max() <= 0.05 + 1e-6
    assert m.dt_proj.weight.abs().max() <= m.dt_rank ** -0.5
    assert m.A_log._no_weight_decay and m.D._no_weight_decay


def test_is_causal():
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, backend="reference")
    x = torch.randn(2, 15, 8)
    x2 = x.clone()
    x2[:, 10:] = torch.randn(2, 5, 8)
    y, y2 = m(x), m(x2)
    torch.testing.assert_close(y[:, :10], y2[:, :10])
    assert not torch.allclose(y[:, 10:], y2[:, 10:])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, bias=True, backend="chunked")
    m(torch.randn(2, 9, 8)).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@settings(max_examples=8, deadline=None)
@given(Bt=st.integers(1, 3), L=st.integers(1, 23), d_model=st.sampled_from([3, 8, 17]), d_conv=st.integers(1, 5),
       d_state=st.integers(1, 5))
def test_backends_agree_at_odd_sizes(Bt, L, d_model, d_conv, d_state):
    torch.manual_seed(L)
    m = Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=1.5)
    x = torch.randn(Bt, L, d_model)
    ys = {}
    for be in CPU_BACKENDS:
        m.backend = be
        ys[be] = m(x)
    assert ys["reference"].shape == (Bt, L, d_model)
    for be in CPU_BACKENDS[1:]:
        torch.testing.assert_close(ys[be], ys["reference"], rtol=1e-5, atol=1e-5)


def test_backend_argument_reaches_the_scan(monkeypatch):
    import vision_ssm.layers.mamba as mod

    seen = []
    real = mod.selective_scan

    def spy(*a, **k):
        seen.append(k["backend"])
        return real(*a, **k)

    monkeypatch.setattr(mod, "selective_scan", spy)
    Mamba(4, backend="chunked")(torch.randn(1, 3, 4))
    assert seen == ["chunked"]


def test_options_and_errors():
    assert Mamba(16, use_fast_path=False, layer_idx=3).layer_idx == 3
    with pytest.raises(TypeError, match="unexpected"):
        Mamba(16, d_states=4)
    with pytest.raises(ValueError, match="expected"):
        Mamba(16)(torch.randn(2, 5, 8))
    m = Mamba(16, dtype=torch.float64)
    assert m.in_proj.weight.dtype == torch.float64 and m.A_log.dtype == torch.float32
    assert math.isclose(Mamba(40, expand=1.5).d_inner, 60)

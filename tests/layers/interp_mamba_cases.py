"""The Mamba mixer on the Triton scan kernel under Triton's CPU interpreter (collected by test_mamba.py).

Not collected on its own: it must run in a process where ``TRITON_INTERPRET=1`` was set before triton
was imported. The Triton backend is registered for CUDA only, so it is registered here a second time,
for CPU, under another name.
"""
from __future__ import annotations

import os

import torch
from _mamba_fixture import check_fixture

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/layers/test_mamba.py"

from vision_ssm.ops import BackendSpec, register_backend  # noqa: E402


def test_interp_mamba_fixture_on_triton():
    register_backend(BackendSpec(name="triton_interp", target="vision_ssm.ops.triton:selective_scan_triton",
                                 devices=("cpu",), priority={"cpu": -1}, probe=("triton",)))
    check_fixture("triton_interp")


def test_interp_mamba_gradients_match_reference():
    from vision_ssm.layers import Mamba

    torch.manual_seed(0)
    m = Mamba(8, d_state=4, d_conv=3, backend="reference")
    x = torch.randn(2, 21, 8)
    grads = []
    for be in ("reference", "triton_interp"):
        m.backend = be
        m.zero_grad()
        m(x).square().sum().backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=6e-4, atol=2e-3, msg=k)

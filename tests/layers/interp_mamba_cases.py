"""The Mamba mixer and the MambaAlign blocks on the Triton kernel under its CPU interpreter (run by test_mamba.py).

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

register_backend(BackendSpec(name="triton_interp", target="vision_ssm.ops.triton:selective_scan_triton",
                             devices=("cpu",), priority={"cpu": -1}, probe=("triton",)))


def _outputs_and_grads(module, inputs, backends_of, backend):
    for m in backends_of(module):
        m.backend = backend
    module.zero_grad()
    out = module(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    sum((o * o).sum() for o in outs).backward()
    return [o.detach() for o in outs], {k: p.grad.clone() for k, p in module.named_parameters()}


def _check_against_reference(module, inputs, backends_of):
    ref = _outputs_and_grads(module, inputs, backends_of, "reference")
    got = _outputs_and_grads(module, inputs, backends_of, "triton_interp")
    for a, b in zip(got[0], ref[0]):
        torch.testing.assert_close(a, b, rtol=6e-4, atol=2e-3)
    for k in ref[1]:
        torch.testing.assert_close(got[1][k], ref[1][k], rtol=6e-4, atol=2e-3, msg=k)


def test_interp_mamba_fixture_on_triton():
    check_fixture("triton_interp")


def test_interp_qsvss_and_cmi_match_reference():
    from vision_ssm.layers import CrossMambaInteraction, QSVSSBlock

    torch.manual_seed(0)
    blk = QSVSSBlock(8, d_state=3)
    _check_against_reference(blk, (torch.randn(2, 8, 3, 5),), lambda b: b.ssms)
    cmi = CrossMambaInteraction(4, d_inner=6, d_state=3)
    _check_against_reference(cmi, (torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)), lambda c: [c])


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

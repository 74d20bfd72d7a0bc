"""``torch.export`` of the reference models through a pure-PyTorch scan backend.

Export traces the selective scan into the graph, so it needs a backend made of torch ops:
``chunked`` or ``reference`` (numba runs NumPy code, mamba_ssm/triton run opaque kernels).
"""
import pytest
import timm
import torch

from vision_ssm.ops import use_backend


def _flat(o):
    if isinstance(o, (list, tuple)):
        for t in o:
            yield from _flat(t)
    else:
        yield o


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision", "test_mambaad"])
def test_torch_export_matches_eager(name):
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with use_backend("chunked"):
        with torch.no_grad():
            eager = list(_flat(model(x)))
        program = torch.export.export(model, (x,))
    # the exported graph carries the scan itself: it runs without any backend selection
    with torch.no_grad():
        got = list(_flat(program.module()(x)))
    assert len(got) == len(eager)
    for a, b in zip(got, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

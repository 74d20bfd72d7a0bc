"""``torch.export`` of the reference models through a pure-PyTorch scan backend.

Export traces the selective scan into the graph, so it needs a backend made of torch ops:
``chunked`` or ``reference`` (numba runs NumPy code, mamba_ssm an opaque extension); the
automatic policy picks one while exporting.
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


def test_export_first_does_not_poison_the_direction_cache():
    """Direction sets first built while ``torch.export`` traces (fake tensors) are cached as real
    tensors: an eager call after the export still works and matches the exported program."""
    from vision_ssm.ops.geometry.directions import _cached

    torch.manual_seed(0)
    model = timm.create_model("test_vmamba").eval()
    x = torch.randn(1, 3, 48, 48)
    _cached.cache_clear()
    with use_backend("chunked"):
        program = torch.export.export(model, (x,))
        with torch.no_grad():
            eager = model(x)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend,name", [("chunked", "test_vmamba"), ("numba", "test_mambavision")])
def test_torch_compile_fullgraph(backend, name):
    """A whole model compiles into one graph (CPU: the 'aot_eager' backend) with a pure-PyTorch
    backend, and with numba through its custom ops; values and a gradient match eager."""
    if backend == "numba":
        pytest.importorskip("numba")
    torch.manual_seed(0)
    model = timm.create_model(name, drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    torch._dynamo.reset()
    with use_backend(backend):
        got = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        (g_got,) = torch.autograd.grad(got.square().sum(), [model.get_classifier().weight])
        want = model(x)
        (g_want,) = torch.autograd.grad(want.square().sum(), [model.get_classifier().weight])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("strict", [False, True])
def test_export_with_the_automatic_backend(strict):
    """With no backend chosen, ``torch.export`` (non-strict, or strict: through Dynamo) gets a
    pure-PyTorch scan (numba, the CPU default when installed, cannot be traced): the exported
    graph reproduces the eager output."""
    torch.manual_seed(0)
    model = timm.create_model("test_vmamba").eval()
    x = torch.randn(1, 3, 32, 32)
    program = torch.export.export(model, (x,), strict=strict)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-4)


def test_timm_exportable_flag_selects_a_pure_torch_backend():
    from timm.layers import set_exportable

    from vision_ssm.ops import available_backends
    from vision_ssm.ops.scan.registry import export_mode, resolve_backend_name

    cpu = torch.device("cpu")
    assert not export_mode()
    with set_exportable(True):
        assert export_mode()
        assert resolve_backend_name(cpu) == "chunked"
        assert resolve_backend_name(cpu, "reference") == "reference"  # an explicit choice wins
    assert resolve_backend_name(cpu) == available_backends("cpu")[0]


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_exported_program_runs_with_grad_and_matches_eager_gradients(name):
    """The exported program runs with gradients enabled (its scan and route/merge are recorded in
    their functional export form, without ``out=`` writes) and backpropagates the eager gradients."""
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not [t for t in targets if t.endswith(".out")], targets
    exported = program.module()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), rtol=1e-4, atol=1e-4)
    xg = x.clone().requires_grad_(True)
    got = torch.autograd.grad(exported(xg).square().sum(), [xg])[0]
    xe = x.clone().requires_grad_(True)
    with use_backend("chunked"):
        want = torch.autograd.grad(model(xe).square().sum(), [xe])[0]
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_jit_trace_works_on_the_pure_pytorch_path(name):
    """``torch.jit.trace`` with no backend chosen records the pure-PyTorch export form; the trace
    reproduces the eager output."""
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.warns(torch.jit.TracerWarning):  # shape checks become constants: the trace is for this size
        traced = torch.jit.trace(model, (x,), check_trace=False)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)


def test_jit_trace_with_a_kernel_backend_points_to_torch_export():
    pytest.importorskip("numba")
    torch.manual_seed(0)
    model = timm.create_model("test_vmamba", backend="numba").eval()
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace records PyTorch operators only.*'numba'.*torch\.export"):
        torch.jit.trace(model, (torch.randn(1, 3, 32, 32),), check_trace=False)

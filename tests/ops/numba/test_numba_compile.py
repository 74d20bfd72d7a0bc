"""The numba backend under ``torch.compile``: custom ops (``vision_ssm::numba_scan_fwd/bwd``) with fake
implementations and autograd, so a model compiles into one graph with the default CPU backend
(the whole-model check is in ``tests/models/test_export.py``)."""
import pytest
import torch

import vision_ssm  # noqa: F401
from vision_ssm.ops import selective_scan

pytest.importorskip("numba")


def _inputs(Bt=2, Dm=4, L=70, N=3, G=2, const=False, opts=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    u, delta = rn(Bt, Dm, L), 0.5 * torch.rand(Bt, Dm, L, generator=g)
    A = -torch.rand(Dm, N, generator=g)
    B, C = (rn(Dm, N), rn(Dm, N)) if const else (rn(Bt, G, N, L), rn(Bt, G, N, L))
    D, z, bias = (rn(Dm), rn(Bt, Dm, L), torch.rand(Dm, generator=g)) if opts else (None, None, None)
    return [t if t is None else t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


@pytest.mark.parametrize("const,opts", [(False, True), (True, False)])
def test_numba_custom_ops_opcheck(const, opts):
    from torch.library import opcheck

    import vision_ssm.ops.numba.custom_ops  # noqa: F401  (registers the ops; the backend does on first use)

    args = _inputs(const=const, opts=opts)
    opcheck(torch.ops.vision_ssm.numba_scan_fwd.default, (*args, opts))
    det = [None if a is None else a.detach() for a in args]
    out, last, hs = torch.ops.vision_ssm.numba_scan_fwd(*det, opts)
    opcheck(torch.ops.vision_ssm.numba_scan_bwd.default,
            (*det, hs, torch.randn_like(out), torch.randn_like(last), opts))


def test_numba_compiled_op_matches_eager():
    """Values, the last state and every gradient (through ``out`` and the last state) agree."""
    args = _inputs()
    inputs = [a for a in args if a is not None]

    def f(*a):
        out, last = selective_scan(*a, delta_softplus=True, return_last_state=True, backend="numba")
        return (out.sin() * 2).sum() + (last * last).sum()

    torch._dynamo.reset()
    got = torch.compile(f, backend="aot_eager", fullgraph=True)(*args)
    gg = torch.autograd.grad(got, inputs)
    want = f(*args)
    gw = torch.autograd.grad(want, inputs)
    torch.testing.assert_close(got, want)
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b)


def test_explicit_numba_exports_as_the_custom_op():
    """``torch.export`` with numba chosen explicitly keeps the scan as ``vision_ssm::numba_scan_fwd``
    (the automatic policy would pick a pure-PyTorch backend) and reproduces the eager output."""
    import timm

    from vision_ssm.ops import use_backend

    torch.manual_seed(0)
    model = timm.create_model("test_mambavision").eval()
    x = torch.randn(1, 3, 64, 64)
    with use_backend("numba"):
        program = torch.export.export(model, (x,))
    targets = {str(n.target) for gm in program.graph_module.modules() if hasattr(gm, "graph")
               for n in gm.graph.nodes if n.op == "call_function"}
    assert "vision_ssm.numba_scan_fwd.default" in targets
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)

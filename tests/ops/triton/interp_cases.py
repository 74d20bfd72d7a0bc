"""Triton kernels run by Triton's CPU interpreter at tiny sizes (collected by test_triton_interpreter.py).

Not collected on its own: it must run in a process where ``TRITON_INTERPRET=1`` was set before
triton was imported. Tiles are forced small (``T = 16`` steps, 2-4 channels per program) so every
case crosses several tiles and channel blocks and has a ragged tail.
"""
from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/ops/triton/test_triton_interpreter.py"

from vision_ssm.ops import get_directions, ss2d_scan  # noqa: E402
from vision_ssm.ops.scan.reference import selective_scan_reference  # noqa: E402
from vision_ssm.ops.triton._launch import config_override  # noqa: E402
from vision_ssm.ops.triton.scan import selective_scan_triton, ss2d_scan_triton  # noqa: E402

TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}


def _close(name, got, want, rtol, atol):
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def _grads(out, inputs, g):
    return torch.autograd.grad(out, [t for t in inputs if t is not None], g)


def _scan_inputs(Bt, Dm, L, N, G, dtype, const_bc=False, z=True, D=True, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    u = rn(Bt, Dm, L).to(dtype).requires_grad_()
    delta = (0.5 * torch.rand(Bt, Dm, L, generator=gen)).to(dtype).requires_grad_()
    A = (-0.5 * torch.rand(Dm, N, generator=gen)).requires_grad_()
    if const_bc:
        B, C = rn(Dm, N).requires_grad_(), rn(Dm, N).requires_grad_()
    else:
        B, C = rn(Bt, G, N, L).to(dtype).requires_grad_(), rn(Bt, G, N, L).to(dtype).requires_grad_()
    Dv = rn(Dm).requires_grad_() if D else None
    zz = rn(Bt, Dm, L).to(dtype).requires_grad_() if z else None
    bb = (0.5 * torch.rand(Dm, generator=gen)).requires_grad_() if bias else None
    return [u, delta, A, B, C, Dv, zz, bb]


@pytest.mark.parametrize(
    "Bt,Dm,L,N,G,dtype,const_bc,opts",
    [
        (2, 4, 37, 3, 2, torch.float32, False, dict()),  # groups, padded N, ragged tail, z/D/bias
        (1, 4, 40, 1, 1, torch.float32, False, dict(z=False, D=False, bias=False)),
        (1, 3, 21, 2, 1, torch.float32, True, dict()),  # constant B/C, odd channel count
        (2, 4, 33, 16, 4, torch.float32, False, dict(z=False)),
        (1, 4, 30, 4, 2, torch.bfloat16, False, dict()),
        (1, 2, 19, 2, 1, torch.float16, False, dict(bias=False)),
    ],
)
def test_interp_scan_matches_reference(Bt, Dm, L, N, G, dtype, const_bc, opts):
    inputs = _scan_inputs(Bt, Dm, L, N, G, dtype, const_bc, **opts)
    softplus = opts.get("bias", True)
    with config_override(T=16, BD_fwd=4, BD_bwd=2):
        out, last = selective_scan_triton(*inputs, delta_softplus=softplus, return_last_state=True)
        g = torch.randn_like(out)
        got = _grads(out, inputs, g)
    ref_out, ref_last = selective_scan_reference(*inputs, delta_softplus=softplus, return_last_state=True)
    want = _grads(ref_out, inputs, g)
    rtol, atol = TOL[dtype]
    rtolw = atolw = max(1e-3, rtol)
    _close("out", out, ref_out, rtol, atol)
    _close("last_state", last, ref_last, rtol, atol)
    names = [n for n, t in zip("u delta A B C D z delta_bias".split(), inputs) if t is not None]
    mult = {"u": (2, 2), "delta": (5, 10)}
    for name, a, b in zip(names, got, want):
        if name in ("A", "D", "z", "delta_bias"):
            r, t = rtolw, atolw * (5 if name == "A" else 1)
        else:
            mr, ma = mult.get(name, (1, 1))
            r, t = rtol * mr, atol * ma
        _close(f"d{name}", a, b, r, t)


@pytest.mark.parametrize(
    "family,K,H,W,N,dtype,ksplit",
    [
        ("sweep", 4, 5, 6, 2, torch.float32, False),  # one program walks the K directions
        ("sweep", 4, 5, 6, 2, torch.float32, True),  # one program per direction, slabs summed
        ("hilbert", 8, 4, 5, 1, torch.float32, False),
        ("snake", 2, 3, 7, 4, torch.float32, True),
        ("zorder", 1, 4, 4, 1, torch.float32, False),
        ("quadsnake", 4, 4, 3, 1, torch.bfloat16, False),
        ("sweep", 4, 3, 5, 1, torch.bfloat16, True),  # bf16 per-direction slabs
    ],
)
def test_interp_ss2d_fused_matches_generic(family, K, H, W, N, dtype, ksplit):
    gen = torch.Generator().manual_seed(1)
    dirs = get_directions(family, H, W, K, "cpu")
    Bt, Dm, L = 2, 4, H * W
    rn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    x = rn(Bt, Dm, L).to(dtype).requires_grad_()
    delta = (0.5 * rn(Bt, K, Dm, L)).to(dtype).requires_grad_()
    A = (-torch.rand(K * Dm, N, generator=gen)).requires_grad_()
    B = rn(Bt, K, N, L).to(dtype).requires_grad_()
    C = rn(Bt, K, N, L).to(dtype).requires_grad_()
    D = rn(K * Dm).requires_grad_()
    bias = torch.rand(K * Dm, generator=gen).requires_grad_()
    args = [x, delta, A, B, C, D, bias]
    with config_override(T=16, BD_fwd=2, BD_bwd=2, ksplit=ksplit):
        out = ss2d_scan_triton(*args, dirs, True)
        g = torch.randn_like(out)
        got = _grads(out, args, g)
        # determinism: a second backward gives bit-identical gradients
        again = _grads(ss2d_scan_triton(*args, dirs, True), args, g)
    # oracle: the generic path in fp32 (the fused kernel merges the K directions in fp32)
    args32 = [a.detach().float().requires_grad_() for a in args]
    ref = ss2d_scan(*args32, dirs, True, backend="reference")
    want = _grads(ref, args32, g.float())
    rtol, atol = TOL[dtype]
    _close("out", out.float(), ref, rtol, atol)
    for name, a, b, c, arg in zip("x delta A B C D delta_bias".split(), got, want, again, args):
        r, t = (max(1e-3, rtol), 5 * max(1e-3, atol)) if name in ("A", "D", "delta_bias") else (rtol * 2, atol * 5)
        assert a.dtype == arg.dtype, f"d{name}: dtype {a.dtype} != {arg.dtype}"
        _close(f"d{name}", a.float(), b, r, t)
        assert torch.equal(a, c), f"d{name} differs between two identical backward passes"


def test_interp_ss2d_rejects_bad_shapes():
    dirs = get_directions("sweep", 2, 3, 2, "cpu")
    x = torch.randn(1, 2, 6)
    with pytest.raises(ValueError):
        ss2d_scan_triton(x, torch.rand(1, 2, 2, 6), -torch.rand(4, 1), torch.randn(1, 2, 2, 6),
                         torch.randn(1, 2, 1, 6), None, None, dirs)


def test_interp_ss2d_channel_last_inputs_are_not_copied():
    """Channel-last inputs (unit channel stride, any other strides) give the same result as
    channel-first ones; the output keeps channel-last memory ``(L*D, 1, D)``."""
    gen = torch.Generator().manual_seed(3)
    dirs = get_directions("sweep", 3, 4, 4, "cpu")
    Bt, Dm, L, K, N = 2, 4, 12, 4, 2
    x = torch.randn(Bt, Dm, L, generator=gen)
    delta = 0.5 * torch.randn(Bt, K, Dm, L, generator=gen)
    A = -torch.rand(K * Dm, N, generator=gen)
    B, C = torch.randn(Bt, K, N, L, generator=gen), torch.randn(Bt, K, N, L, generator=gen)
    D, bias = torch.randn(K * Dm, generator=gen), torch.rand(K * Dm, generator=gen)
    x_cl = x.transpose(1, 2).contiguous().transpose(1, 2)
    d_cl = delta.permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2)  # memory (K, Bt, L, D)
    with config_override(T=4, BD_fwd=2, BD_bwd=2):
        want = ss2d_scan_triton(x, delta, A, B, C, D, bias, dirs, True)
        got = ss2d_scan_triton(x_cl, d_cl, A, B, C, D, bias, dirs, True)
    assert got.stride() == (L * Dm, 1, Dm)
    assert torch.equal(got, want)


# ----------------------------------------------------------------- custom ops (torch.compile path)
def _ss2d_args(dtype=torch.float32, seed=5, family="sweep", K=4, H=3, W=5, N=2, Dm=4, Bt=2):
    gen = torch.Generator().manual_seed(seed)
    dirs = get_directions(family, H, W, K, "cpu")
    L = H * W
    rn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    args = [rn(Bt, Dm, L).to(dtype), (0.5 * rn(Bt, K, Dm, L)).to(dtype), -torch.rand(K * Dm, N, generator=gen),
            rn(Bt, K, N, L).to(dtype), rn(Bt, K, N, L).to(dtype), rn(K * Dm), torch.rand(K * Dm, generator=gen)]
    return [a.requires_grad_() for a in args], dirs


def test_interp_custom_ops_opcheck():
    """Schema, fake (meta) implementations, autograd registration and AOT dispatch of the four ops."""
    from torch.library import opcheck

    import vision_ssm.ops.triton.custom_ops  # noqa: F401

    ss2d, dirs = _ss2d_args()
    idx = dirs.index.to(torch.int32)
    scan = _scan_inputs(2, 4, 10, 2, 2, torch.float32)
    with config_override(T=4, BD_fwd=2, BD_bwd=2):
        opcheck(torch.ops.vision_ssm.ss2d_fwd.default, (*ss2d, idx, True, True))
        opcheck(torch.ops.vision_ssm.ss2d_fwd.default, (*[a.detach() for a in ss2d], idx, True, False))
        opcheck(torch.ops.vision_ssm.scan_fwd.default, (*scan, True, True))
        no_opt = _scan_inputs(1, 2, 7, 1, 1, torch.float32, const_bc=True, z=False, D=False, bias=False)
        opcheck(torch.ops.vision_ssm.scan_fwd.default, (*no_opt, False, True))
        # the backward ops on their own (outputs of the forward ops as inputs)
        det = [a.detach() for a in ss2d]
        y, states = torch.ops.vision_ssm.ss2d_fwd(*det, idx, True, True)
        opcheck(torch.ops.vision_ssm.ss2d_bwd.default, (*det, idx, states, torch.randn_like(y), True))
        det = [None if a is None else a.detach() for a in scan]
        out, _, states = torch.ops.vision_ssm.scan_fwd(*det, True, True)
        opcheck(torch.ops.vision_ssm.scan_bwd.default, (*det, states, torch.randn_like(out), True))
        det = [None if a is None else a.detach() for a in no_opt]  # absent D, z, bias: 0-element grads
        out, _, states = torch.ops.vision_ssm.scan_fwd(*det, False, True)
        opcheck(torch.ops.vision_ssm.scan_bwd.default, (*det, states, torch.randn_like(out), False))


@pytest.mark.parametrize("ksplit", [True, False])
def test_interp_torch_compile_fullgraph_matches_eager(ksplit):
    """``torch.compile(fullgraph=True)`` traces through both ops (no graph break) and gives the eager
    values and gradients; the backward runs the registered autograd formula."""
    ss2d, dirs = _ss2d_args(K=4)
    scan = _scan_inputs(2, 4, 10, 2, 2, torch.float32)

    def f(ss2d, scan):
        y = ss2d_scan_triton(*ss2d, dirs, True)
        out, last = selective_scan_triton(*scan, delta_softplus=True, return_last_state=True)
        return (y.sin() * 2).sum() + (out * out).sum() + last.sum()

    torch._dynamo.reset()
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    inputs = [t for t in [*ss2d, *scan] if t is not None]
    with config_override(T=4, BD_fwd=2, BD_bwd=2, ksplit=ksplit):
        want = f(ss2d, scan)
        gw = torch.autograd.grad(want, inputs)
        got = compiled(ss2d, scan)
        gg = torch.autograd.grad(got, inputs)
        with torch.no_grad():  # inference: no states saved
            torch.testing.assert_close(compiled(ss2d, scan), want.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_interp_ss2d_layer_compiles_with_triton_backend(monkeypatch):
    """A whole SS2D layer (projections, conv, norm, gate) on the triton backend compiles into one graph."""
    from vision_ssm.layers import SS2D
    from vision_ssm.ops.scan.registry import get_backend_spec

    spec = get_backend_spec("triton")  # run it on CPU through the interpreter
    monkeypatch.setattr(spec, "devices", ("cuda", "cpu"))
    monkeypatch.setattr(spec, "_available", True)
    # as in a fresh process: the backend's functions are loaded while Dynamo traces the first call
    monkeypatch.setattr(spec, "_fn", None)
    monkeypatch.setattr(spec, "_ss2d_fn", None)
    torch.manual_seed(0)
    layer = SS2D(8, d_state=1, ssm_ratio=1.0, backend="triton").train()
    x = torch.randn(2, 5, 6, 8, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with config_override(T=8, BD_fwd=4, BD_bwd=4):
        got = compiled(x)  # compiled first: nothing resolved or loaded before tracing
        gg = torch.autograd.grad(got.square().sum(), [x, layer.A_logs, layer.dt_projs_weight])
        want = layer(x)
        gw = torch.autograd.grad(want.square().sum(), [x, layer.A_logs, layer.dt_projs_weight])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_interp_torch_export_keeps_the_custom_op(monkeypatch):
    """``torch.export`` of an SS2D layer on the triton backend: the scan is one ``vision_ssm::ss2d_fwd``
    node of the exported graph, and the exported program reproduces the eager output."""
    from vision_ssm.layers import SS2D
    from vision_ssm.ops.scan.registry import get_backend_spec

    spec = get_backend_spec("triton")
    monkeypatch.setattr(spec, "devices", ("cuda", "cpu"))
    monkeypatch.setattr(spec, "_available", True)
    torch.manual_seed(1)
    layer = SS2D(8, d_state=2, ssm_ratio=1.0, scan="hilbert", directions=8, backend="triton").eval()
    x = torch.randn(1, 4, 5, 8)
    with config_override(T=8, BD_fwd=4, BD_bwd=4):
        program = torch.export.export(layer, (x,))
        targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
        assert sum("vision_ssm.ss2d_fwd" in t for t in targets) == 1, targets
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), layer(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- layout copies (channel-first callers)
@pytest.mark.parametrize("shape", [(2, 5, 7), (2, 3, 70, 130), (1, 2, 1, 9), (3, 2, 16, 300)])
def test_interp_relayout_copy_matches_torch(shape):
    from vision_ssm.ops.triton._relayout import channels_last_copy, relayout_copy

    t = torch.randn(shape)
    cl = channels_last_copy(t)
    assert cl.stride(-2) == 1 and torch.equal(cl, t)
    back = relayout_copy(cl, torch.empty(shape, dtype=torch.bfloat16))  # and a dtype change
    assert back.is_contiguous() and torch.equal(back, t.to(torch.bfloat16))
    with pytest.raises(ValueError):
        relayout_copy(t, torch.empty(shape[:-1] + (shape[-1] + 1,)))


def test_interp_ss2d_gradients_keep_the_inputs_layout():
    """Channel-first inputs get channel-first gradients (copied back by the tiled kernel)."""
    args, dirs = _ss2d_args()
    with config_override(T=4, BD_fwd=2, BD_bwd=2):
        out = ss2d_scan_triton(*args, dirs, True)
        grads = torch.autograd.grad(out, args, torch.randn_like(out))
    for name, a, g in zip("x delta A B C D delta_bias".split(), args, grads):
        assert g.stride() == a.stride(), f"d{name}: strides {g.stride()} != {a.stride()}"


def test_interp_ss2d_intermediate_inputs_get_kernel_layout_gradients():
    """Inputs computed by earlier ops (not leaves) get their gradients in the kernels' channel-last
    layout, with the same values as the leaves' (channel-first, copied back): no layout copy is made
    for a gradient that only flows on to another backward."""
    args, dirs = _ss2d_args()
    seed = torch.randn(Bt := 2, 4, 15)
    with config_override(T=4, BD_fwd=2, BD_bwd=2):
        out = ss2d_scan_triton(*args, dirs, True)
        leaf_grads = torch.autograd.grad(out, args, seed)
        inter = [a * 1.0 for a in args]  # same values and layouts, now outputs of a MulBackward
        out2 = ss2d_scan_triton(*inter, dirs, True)
        grads = torch.autograd.grad(out2, inter, seed)
    assert torch.equal(out2, out)
    for name, a, g, ref in zip("x delta A B C D delta_bias".split(), inter, grads, leaf_grads):
        torch.testing.assert_close(g, ref, rtol=0, atol=0, msg=f"d{name}")
        if name in ("x", "delta"):  # channel-first inputs; the kernels work channel-last
            assert g.stride(-2) == 1 and a.stride(-2) != 1, f"d{name}: strides {g.stride()}"
    assert Bt == out.shape[0]


# ----------------------------------------------------------------- the public entry points on CPU
def test_interp_public_ops_take_backend_triton_on_cpu():
    """Under the interpreter ``backend="triton"`` asked for by name runs on CPU tensors through the
    public ops (values and gradients as the reference), and is never chosen automatically on CPU."""
    import vision_ssm.ops as ops
    from vision_ssm.ops.scan.registry import resolve_backend_name

    cpu = torch.device("cpu")
    assert "triton" not in ops.available_backends("cpu")
    assert resolve_backend_name(cpu) != "triton"
    assert resolve_backend_name(cpu, "triton") == "triton"
    args = _scan_inputs(2, 4, 23, 2, 2, torch.float32)
    with config_override(T=8, BD_fwd=4, BD_bwd=4):
        got = ops.selective_scan(*args, delta_softplus=True, backend="triton")
        with ops.use_backend("triton"):
            again = ops.selective_scan(*args, delta_softplus=True)
        want = selective_scan_reference(*args, delta_softplus=True)
        g = torch.randn_like(want)
        grads = _grads(got, args, g)
    _close("out", got, want, 6e-4, 2e-3)
    torch.testing.assert_close(again, got)
    for i, (a, b) in enumerate(zip(grads, _grads(want, args, g))):
        _close(f"grad {i}", a, b, 2e-3, 1e-2)
    (x, delta, A, B, C, D, bias), dirs = _ss2d_args(family="hilbert", K=4, H=3, W=5)
    with config_override(T=8, BD_fwd=4, BD_bwd=4):
        got2 = ss2d_scan(x, delta, A, B, C, D, bias, dirs, backend="triton")
    want2 = ss2d_scan(x, delta, A, B, C, D, bias, dirs, backend="reference")
    _close("ss2d", got2, want2, 6e-4, 2e-3)

"""GPU tests of the SS2D layer and a VMamba model on CUDA (triton backend, channel-last core) against
the same weights on CPU (reference backend, channel-first core)."""
from __future__ import annotations

import copy

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full fp32 convs/matmuls on CUDA, so the comparison measures the scan path, not TF32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _grads(module, x, g):
    x = x.detach().clone().requires_grad_()
    y = module(x)
    grads = torch.autograd.grad(y, [x, *module.parameters()], g.to(y.device), allow_unused=True)
    return y.detach().cpu(), [None if t is None else t.detach().cpu() for t in grads]


@pytest.mark.parametrize(
    "kw",
    [
        dict(d_state=1, channels_first=True, gate=False, conv_bias=False),  # VMamba v2 (v05_noz)
        dict(d_state=16),  # vanilla v0 layout: (B, H, W, C), gate
        dict(d_state=4, scan="hilbert", directions=8, force_fp32=True),  # MambaAD-style hybrid scan
    ],
)
def test_ss2d_layer_cuda_matches_cpu(kw):
    from vision_ssm.layers import SS2D
    from vision_ssm.ops import use_backend

    torch.manual_seed(0)
    m = SS2D(d_model=16, **kw).train()
    shape = (2, 16, 9, 11) if kw.get("channels_first") else (2, 9, 11, 16)
    x = torch.randn(shape)
    g = torch.randn(shape)
    with use_backend("reference"):
        y_cpu, g_cpu = _grads(m, x, g)
    m_gpu = copy.deepcopy(m).cuda()
    y_gpu, g_gpu = _grads(m_gpu, x.cuda(), g)
    torch.testing.assert_close(y_gpu, y_cpu, rtol=1e-3, atol=1e-4)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(names, g_gpu, g_cpu):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-4, msg=lambda s, n=name: f"d{n}: {s}")


def test_vmamba_model_cuda_matches_cpu():
    import timm

    import vision_ssm  # noqa: F401
    from vision_ssm.ops import use_backend

    torch.manual_seed(0)
    m = timm.create_model("vmamba_tiny_s1l8", num_classes=10, depths=(1, 1, 2, 1)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), use_backend("reference"):
        want = m(x)
    with torch.no_grad():
        got = copy.deepcopy(m).cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_vmamba_torch_compile_matches_eager_cuda(mode):
    """``torch.compile`` (Inductor; CUDA graphs with ``reduce-overhead``) of a VMamba model on the triton
    backend: one graph (``fullgraph=True``; the scan is the ``vision_ssm::`` custom op), same outputs and
    parameter gradients as eager, in fp32 and under bf16 autocast."""
    import timm

    import vision_ssm  # noqa: F401

    torch.manual_seed(0)
    m = timm.create_model("vmamba_tiny_s1l8", num_classes=10, depths=(1, 1, 2, 1), drop_path_rate=0.0).cuda().train()
    x = torch.randn(2, 3, 64, 64, device="cuda")
    torch._dynamo.reset()
    compiled = torch.compile(m, mode=mode, fullgraph=True)
    for dtype, tol in ((None, 2e-4), (torch.bfloat16, 3e-2)):
        def run(model, dtype=dtype):
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                y = model(x)
            grads = torch.autograd.grad(y.float().square().sum(), list(m.parameters()))
            return y.detach().float().clone(), [g.clone() for g in grads]

        y_e, g_e = run(m)
        for _ in range(3):  # warm-up and CUDA-graph recording, then replays
            y_c, g_c = run(compiled)
        torch.testing.assert_close(y_c, y_e, rtol=tol, atol=tol)
        for (name, _), a, b in zip(m.named_parameters(), g_c, g_e):
            scale = b.abs().max().item() + 1e-6
            assert (a - b).abs().max().item() <= 10 * tol * scale, f"d{name} differs ({mode}, {dtype})"

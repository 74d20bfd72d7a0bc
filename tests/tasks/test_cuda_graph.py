"""CudaGraphForward: the training forward/backward replayed from CUDA graphs (GPU tests run with ``-m gpu``)."""
from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from classification_data import digits_subset, export_small_digits

import vision_ssm  # noqa: F401  (registers the models)
from vision_ssm.tasks.classification import ClassificationConfig, train
from vision_ssm.tasks.cuda_graph import CudaGraphForward

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_argument_errors():
    m = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match="amp_dtype"):
        CudaGraphForward(m, torch.float64)
    with pytest.raises(ValueError, match="warmup"):
        CudaGraphForward(m, warmup=0)
    with pytest.raises(ValueError, match="CUDA input"):
        CudaGraphForward(m)(torch.randn(2, 4))
    with pytest.raises(TypeError, match="tensor"):
        CudaGraphForward(m)([1.0, 2.0])
    with pytest.raises(ValueError, match="must not require a gradient"):
        CudaGraphForward(m)(torch.randn(2, 4, requires_grad=True))


def test_recipe_rejects_cuda_graph_where_it_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="grad_checkpointing"):
        ClassificationConfig(cuda_graph=True, grad_checkpointing=True)
    digits = export_small_digits(tmp_path / "d16", size=16)
    tiny = digits_subset(digits, tmp_path / "tiny", 4, 1)
    cfg = ClassificationConfig(data_root=str(tiny), output=str(tmp_path / "o"), model="test_mambavision",
                               img_size=16, crop_pct=1.0, batch_size=8, epochs=1, workers=0, progress=False,
                               device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="one CUDA device"):
        train(cfg)


def _models(name: str):
    torch.manual_seed(0)
    eager = timm.create_model(name, num_classes=10, drop_path_rate=0.0).cuda().train()
    return eager, copy.deepcopy(eager)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_graphed_steps_match_eager(name, amp):
    """Five AdamW steps: the graphed model's losses, gradients and weights follow the eager model's."""
    eager, graphed_model = _models(name)
    g = CudaGraphForward(graphed_model, amp)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (eager, graphed_model)]
    gen = torch.Generator(device="cuda").manual_seed(1)
    buffers = {n: b.clone() for n, b in graphed_model.named_buffers()}
    tol = dict(rtol=1e-4, atol=1e-5) if amp is None else dict(rtol=2e-2, atol=2e-3)
    for step in range(5):
        x = torch.randn(8, 3, 32, 32, device="cuda", generator=gen)
        y = torch.randint(0, 10, (8,), device="cuda", generator=gen)
        losses = []
        for fwd in (eager, g):
            with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                loss = F.cross_entropy(fwd(x), y)
            loss.backward()
            losses.append(loss.item())
        if step == 0:
            assert g.captured
            for n, b in graphed_model.named_buffers():  # the capture's warm-up left no trace in the buffers
                if n.endswith("num_batches_tracked"):
                    assert int(b) == int(buffers[n]) + 1, n
        for (n, b), c in zip(eager.named_buffers(), graphed_model.buffers()):  # BatchNorm statistics
            torch.testing.assert_close(c, b, **tol, msg=f"buffer {n} at step {step}")
        for (n, p), q in zip(eager.named_parameters(), graphed_model.parameters()):
            if p.grad is not None:
                torch.testing.assert_close(q.grad, p.grad, **tol, msg=f"grad {n} at step {step}")
        assert losses[1] == pytest.approx(losses[0], rel=tol["rtol"], abs=tol["atol"])
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
    for (n, p), q in zip(eager.named_parameters(), graphed_model.parameters()):
        torch.testing.assert_close(q, p, **tol, msg=f"weight {n}")
    # eval mode runs eagerly on the same (updated) weights
    eager.eval(), graphed_model.eval()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(graphed_model(x), eager(x), **tol)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("set_to_none", [True, False])
def test_accumulated_gradients_match_eager(set_to_none):
    """Two micro-batches per step, two steps: the graphed gradients are the eager ones (no buffer aliasing)."""
    eager, graphed_model = _models("test_vmamba")
    g = CudaGraphForward(graphed_model)
    gen = torch.Generator(device="cuda").manual_seed(2)
    for step in range(2):
        for _ in range(2):
            x = torch.randn(8, 3, 32, 32, device="cuda", generator=gen)
            y = torch.randint(0, 10, (8,), device="cuda", generator=gen)
            for fwd in (eager, g):
                F.cross_entropy(fwd(x), y).backward()
        for (n, p), q in zip(eager.named_parameters(), graphed_model.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=f"grad {n} at step {step}")
        for m in (eager, graphed_model):
            m.zero_grad(set_to_none=set_to_none)


@needs_cuda
@pytest.mark.gpu
def test_other_inputs_are_refused():
    _, m = _models("test_mambavision")
    g = CudaGraphForward(m, torch.bfloat16)
    x = torch.randn(8, 3, 32, 32, device="cuda")
    out = g(x)
    out.sum().backward()
    assert "forward" not in vars(m)  # the model keeps its own forward: model(x) and its copies run eagerly
    kept = out.detach().clone()
    g(torch.randn_like(x))  # the next replay rewrites the graph's output buffer, not the tensor handed out
    torch.testing.assert_close(out.detach(), kept, rtol=0, atol=0)
    for bad in (torch.randn(4, 3, 32, 32, device="cuda"), torch.randn(1, 3, 32, 32, device="cuda"),
                x.half(), x.contiguous(memory_format=torch.channels_last)):
        with pytest.raises(ValueError, match="captured for input"):
            g(bad)
    with pytest.raises(ValueError, match="must not require a gradient"):
        g(x.clone().requires_grad_())
    m.eval()
    with pytest.raises(ValueError, match="eval mode"):
        g(x)
    m.train()
    with torch.autocast("cuda", dtype=torch.bfloat16), pytest.raises(ValueError, match="amp_dtype=None"):
        CudaGraphForward(m)(x)


@needs_cuda
@pytest.mark.gpu
def test_hooks_and_checkpointing_are_refused():
    _, m = _models("test_mambavision")
    h = m.register_forward_hook(lambda *a: None)
    with pytest.raises(ValueError, match="hooks"):
        CudaGraphForward(m)(torch.randn(8, 3, 32, 32, device="cuda"))
    h.remove()
    m.set_grad_checkpointing(True)
    with pytest.raises(ValueError, match="checkpointing"):
        CudaGraphForward(m)(torch.randn(8, 3, 32, 32, device="cuda"))


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("model", ["test_vmamba", "test_mambavision"])
def test_recipe_with_cuda_graph_learns(tmp_path, model):
    digits = export_small_digits(tmp_path / "d32", size=32)
    cfg = ClassificationConfig(data_root=str(digits), model=model, img_size=32, crop_pct=1.0,
                               output=str(tmp_path / "o"), epochs=3, batch_size=64, lr=2e-3, amp="bf16",
                               model_ema=True, clip_grad=5.0, hflip=0.0, color_jitter=0.0, scale=[0.7, 1.0],
                               workers=2, progress=False, device="cuda", cuda_graph=True)
    res = train(cfg)
    assert res["top1"] > 60.0, res["history"]
    print(f"{model} cuda_graph: val top-1 {res['top1']:.1f}%, {res['history'][-1]['train_img_per_s']:.0f} img/s")


class _FixedBufferGrad(torch.autograd.Function):
    """``2·w`` whose backward returns its gradient in one fixed buffer, as a graphed backward does."""

    buf = torch.zeros(3)

    @staticmethod
    def forward(ctx, w):
        return 2 * w

    @staticmethod
    def backward(ctx, g):
        _FixedBufferGrad.buf.copy_(2 * g)
        return _FixedBufferGrad.buf.detach()


@pytest.mark.parametrize("protect", [False, True])
def test_gradients_do_not_alias_the_graphs_buffers(protect):
    """Accumulation and zero_grad(set_to_none=False) stay right when gradients come in a fixed buffer."""
    from vision_ssm.tasks.cuda_graph import ensure_grads

    p = torch.nn.Parameter(torch.ones(3))

    def backward(scale):
        if protect:
            ensure_grads([p])
        (scale * _FixedBufferGrad.apply(p)).sum().backward()

    backward(1.0)
    backward(3.0)  # accumulate: 2 + 6
    ok_accumulate = torch.equal(p.grad, torch.full((3,), 8.0))
    p.grad.zero_()  # zero_grad(set_to_none=False)
    backward(1.0)
    ok_zeroed = torch.equal(p.grad, torch.full((3,), 2.0))
    assert (ok_accumulate and ok_zeroed) == protect  # unprotected, autograd keeps the buffer itself as .grad

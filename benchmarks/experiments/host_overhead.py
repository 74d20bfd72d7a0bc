"""Device-session helper: host (Python) time of the triton backend's calls and where it goes.

``python -m benchmarks.experiments.host_overhead [BATCH]`` — times the eager forward and forward+backward of the fused
SS2D core on tiny CUDA tensors (GPU work negligible, so the time is the host's), runs cProfile over
those calls, then over bf16 training steps of vmamba_tiny_s1l8 (batch ``argv[1]``, default 64), and
prints the functions with the most own time.
"""
import cProfile
import pstats
import sys
import time

import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks.gpu_models import train_step
from vision_ssm.ops import get_directions
from vision_ssm.ops.triton.scan import ss2d_scan_triton

Bt, Dm, H, W, K, N = 1, 32, 4, 4, 4, 1
L = H * W
dev = "cuda"
dirs = get_directions("sweep", H, W, K, dev)
x = torch.randn(Bt, L, Dm, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
d = torch.randn(Bt, L, K, Dm, device=dev, dtype=torch.bfloat16).permute(0, 2, 3, 1).requires_grad_()
A = (-torch.rand(K * Dm, N, device=dev)).requires_grad_()
Bm = torch.randn(Bt, L, K, N, device=dev, dtype=torch.bfloat16).permute(0, 2, 3, 1).requires_grad_()
C = torch.randn(Bt, L, K, N, device=dev, dtype=torch.bfloat16).permute(0, 2, 3, 1).requires_grad_()
Dp = torch.randn(K * Dm, device=dev, requires_grad=True)
bias = torch.randn(K * Dm, device=dev, requires_grad=True)
args = (x, d, A, Bm, C, Dp, bias)


def fwd():
    return ss2d_scan_triton(*args, dirs, True)


def fwd_bwd():
    y = fwd()
    torch.autograd.grad(y, args, torch.ones_like(y))


def per_call_s(fn, n: int, warmup: int) -> float:
    """Wall seconds per call of ``fn`` over ``n`` calls (after ``warmup``), GPU work included."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def profiled(fn, n: int) -> pstats.Stats:
    """cProfile statistics of ``n`` calls of ``fn``."""
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    pr.disable()
    return pstats.Stats(pr)


for name, fn, n in (("forward (no grad)", lambda: torch.no_grad()(fwd)(), 2000), ("forward", fwd, 2000),
                    ("forward+backward", fwd_bwd, 1000)):
    us = per_call_s(fn, n, 20) * 1e6
    print(f"fused SS2D core, tiny shapes, {name:18s}: {us:7.1f} us per call (host-bound)")
profiled(fwd_bwd, 200).sort_stats("tottime").print_stats(25)

bs = int(sys.argv[1]) if len(sys.argv) > 1 else 64
torch.backends.cudnn.benchmark = True
step = train_step(timm.create_model("vmamba_tiny_s1l8", num_classes=1000).cuda(), bs, 224)
print(f"vmamba_tiny_s1l8 bs{bs} training step: {per_call_s(step, 10, 5) * 1e3:.1f} ms wall")
st = profiled(step, 10)
st.sort_stats("tottime").print_stats(30)
st.sort_stats("cumulative").print_stats("vision_ssm", 40)

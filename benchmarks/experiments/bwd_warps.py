"""Device-session helper: backward channel block and warps at N = 16.

``python -m benchmarks.experiments.bwd_warps`` — times forward + backward of the fused SS2D core (channel-last
inputs) and of the 1-D scan at ``(64, 4·192, 3136, 16)``, bf16, for several ``BD_bwd`` x ``nw_bwd``
overrides (the tuning sweep of ``gpu_scan.py --tune`` only tries one warp at N = 16), and prints
how far each configuration's gradients are from the default's (reduction order only).
"""
import torch

from benchmarks.gpu_scan import _routed_inputs, bench, channel_last_copies, make_inputs
from vision_ssm.ops import get_directions, selective_scan, ss2d_scan
from vision_ssm.ops.triton._launch import config_override

Bt, K, Dm, L, N = 64, 4, 192, 3136, 16
inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
x, d, Bm, Cm = channel_last_copies(inp["x"], inp["delta"], inp["B"], inp["C"])
dirs = get_directions("sweep", 56, 56, K, "cuda")
args = [a.detach() for a in (x, d, inp["A"], Bm, Cm, inp["D"], inp["bias"])]
u, dd = _routed_inputs(inp, K)
sargs = [a.detach() for a in (u, dd, inp["A"], inp["B"], inp["C"], inp["D"], inp["bias"])]


def fused():
    return ss2d_scan(*args, dirs, True, backend="triton")


def scan1d():
    return selective_scan(*sargs[:5], sargs[5], None, sargs[6], True, backend="triton")


ref = None
for bd, nw in [(16, 1), (16, 2), (16, 4), (8, 1), (8, 2), (8, 4), (32, 2), (32, 4)]:
    with config_override(BD_bwd=bd, nw_bwd=nw):
        for a in args:
            a.requires_grad_(True)
        y = fused()
        g = torch.autograd.grad(y, args, torch.ones_like(y))
        ref = g if ref is None else ref
        err = max(((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6)).item()
                  for a, b in zip(g, ref))
        fb = bench(fused, True, args)
        sfb = bench(scan1d, True, sargs)
    print(f"BD_bwd={bd:2d} nw_bwd={nw}: fused fwd+bwd {fb:.3f} ms | 1-D scan fwd+bwd {sfb:.3f} ms | "
          f"max rel. gradient difference from the default {err:.1e}", flush=True)

"""Device-session helper: fused SS2D core on channel-first inputs, by what is copied to channel-last first.

``python benchmarks/_cf_layout.py [--all]`` — policies (``config_override(cf_copy=...)``): 1 copies x, delta,
B, C (the default), 3 x and delta only, 2 all but delta, 0 nothing (the kernels read channel-first
memory strided);
``cl`` = inputs already channel-last (no copy needed). Median ms, forward and forward+backward.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_scan import SHAPES, bench, channel_last_copies, make_inputs  # noqa: E402

from vision_ssm.ops import get_directions, ss2d_scan  # noqa: E402
from vision_ssm.ops.triton._launch import config_override  # noqa: E402

for Bt, K, Dm, L, N in SHAPES:
    H = W = int(L ** 0.5)
    dirs = get_directions("sweep", H, W, K, "cuda")
    inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
    args = [inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias")]
    x, d, A, B, C, D, bias = args
    x_cl, d_cl, B_cl, C_cl = channel_last_copies(x, d, B, C)
    cl = [x_cl, d_cl, A, B_cl, C_cl, D, bias]
    out = []
    variants = [("copy all", 1, args), ("copy x,delta", 3, args), ("cl", 1, cl)]
    if "--all" in sys.argv:
        variants += [("copy x,B,C", 2, args), ("no copy", 0, args)]
    for name, policy, a in variants:
        with config_override(cf_copy=policy):
            f = bench(lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, True, backend="triton"), False, a)
            fb = bench(lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, True, backend="triton"), True, a)
        out.append(f"{name}: {f:.3f} / {fb:.3f}")
    print((Bt, K * Dm, L, N), " | ".join(out), flush=True)

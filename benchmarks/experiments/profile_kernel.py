"""Device-session helper: run one triton kernel configuration a few times (for ncu).

``python -m benchmarks.experiments.profile_kernel {scan|ss2d|ss2d_cl} SHAPE_INDEX [grad]`` (under
``ncu``: ``ncu ... python -m benchmarks.experiments.profile_kernel ss2d_cl 1``)
"""
import math
import sys

import torch

from benchmarks.gpu_scan import SHAPES, _routed_inputs, channel_last_copies, make_inputs
from vision_ssm.ops import get_directions, selective_scan, ss2d_scan

mode, shape_i = sys.argv[1], int(sys.argv[2])
grad = len(sys.argv) > 3 and sys.argv[3] == "grad"
Bt, K, Dm, L, N = SHAPES[shape_i]
inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
x, d, A, B, C, D, bias = (inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias"))
if mode == "ss2d_cl":
    x, d, B, C = channel_last_copies(x, d, B, C)
if mode == "scan":
    x, d = _routed_inputs(inp, K)
args = [x, d, A, B, C, D, bias]
if grad:
    for t in args:
        t.requires_grad_(True)
dirs = get_directions("sweep", int(math.isqrt(L)), int(math.isqrt(L)), K, "cuda")
for _ in range(3):
    with torch.set_grad_enabled(grad):
        if mode.startswith("ss2d"):
            y = ss2d_scan(*args, dirs, True, backend="triton")
        else:
            y = selective_scan(x, d, A, B, C, D, None, bias, True, backend="triton")
        if grad:
            y.backward(torch.ones_like(y))
torch.cuda.synchronize()

"""Device-session helper: run one triton kernel configuration a few times (for ncu)."""
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_scan import _routed_inputs, make_inputs  # noqa: E402

from vision_ssm.ops import get_directions, selective_scan, ss2d_scan  # noqa: E402
from vision_ssm.ops.triton._launch import config_override  # noqa: E402

mode, shape_i = sys.argv[1], int(sys.argv[2])
ksplit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
Bt, K, Dm, L, N = [(64, 4, 192, 3136, 16), (128, 4, 96, 3136, 1), (64, 4, 384, 784, 1)][shape_i]
inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
with torch.no_grad(), config_override(ksplit=ksplit):
    for _ in range(3):
        if mode == "ss2d":
            dirs = get_directions("sweep", int(math.isqrt(L)), int(math.isqrt(L)), K, "cuda")
            ss2d_scan(*[inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias")], dirs, True, backend="triton")
        else:
            u, d = _routed_inputs(inp, K)
            selective_scan(u, d, inp["A"], inp["B"], inp["C"], inp["D"], None, inp["bias"], True, backend="triton")
torch.cuda.synchronize()

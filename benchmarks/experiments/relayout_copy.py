"""Device-session helper: the tiled channel-first → channel-last copy against ``Tensor.copy_``.

``python -m benchmarks.experiments.relayout_copy`` — for the scan tensors of ``gpu_scan.py``'s shapes (bf16):
median ms of ``vision_ssm.ops.triton._relayout.relayout_copy`` (default tile, then other
``(BC, BL, num_warps)`` tiles), of PyTorch's copy into the same channel-last tensor, and the floor
(bytes read + written over the measured copy bandwidth).
"""
import torch
from triton.testing import do_bench

from benchmarks.gpu_scan import copy_bandwidth
from vision_ssm.ops.triton._relayout import relayout_copy

TILES = [None, (64, 64, 4), (64, 128, 8), (32, 128, 4), (128, 64, 8), (16, 512, 4)]


def run(shape, bw):
    t = torch.randn(shape, device="cuda").to(torch.bfloat16)
    out = torch.empty(t.movedim(-2, -1).shape, device="cuda", dtype=t.dtype).movedim(-1, -2)
    floor = 2 * t.numel() * t.element_size() / bw * 1e3
    res = [f"torch {do_bench(lambda: out.copy_(t), warmup=25, rep=100, return_mode='median'):.3f}"]
    for tile in TILES:
        ms = do_bench(lambda tile=tile: relayout_copy(t, out, tile), warmup=25, rep=100, return_mode="median")
        res.append(f"{tile or 'default'}: {ms:.3f}")
    print(shape, f"floor {floor:.3f}", " | ".join(res), flush=True)


bw = copy_bandwidth()
for shape in [(64, 4, 192, 3136), (64, 192, 3136), (64, 4, 16, 3136), (128, 4, 96, 3136)]:
    run(shape, bw)

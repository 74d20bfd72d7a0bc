"""Device-session helper: where the fused SS2D forward's time goes at N = 1.

``python -m benchmarks.experiments.n1_floor`` — for the two N = 1 shapes of ``gpu_scan.py`` (bf16, channel-last
inputs, K = 4 sweep): the fused forward against the memory floor, the kernel times of the scan and
the slab merge (torch.profiler), their byte bounds at the measured copy bandwidth, and the variant
that walks all K directions in one program (``config_override(ksplit=0)``).
"""
import math

import torch

from benchmarks.gpu_scan import bench, channel_last_copies, copy_bandwidth, make_inputs
from vision_ssm.ops import get_directions, ss2d_scan
from vision_ssm.ops.triton._launch import config_override

bw = copy_bandwidth()
print(f"copy bandwidth {bw / 1e9:.0f} GB/s")
for Bt, K, Dm, L, N in [(128, 4, 96, 3136, 1), (64, 4, 384, 784, 1)]:
    inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
    x, d, Bm, Cm = channel_last_copies(inp["x"], inp["delta"], inp["B"], inp["C"])
    H = math.isqrt(L)
    dirs = get_directions("sweep", H, H, K, "cuda")
    args = [x, d, inp["A"], Bm, Cm, inp["D"], inp["bias"]]

    def fn(args=args, dirs=dirs):
        return ss2d_scan(*args, dirs, True, backend="triton")

    bc_bytes = (Bm.numel() + Cm.numel()) * 2
    floor_bytes = x.numel() * 2 * 2 + d.numel() * 2 + bc_bytes  # x read, y written, delta/B/C read
    slab_bytes = Bt * K * L * Dm * 2
    scan_bytes = x.numel() * 2 * K + d.numel() * 2 + bc_bytes + slab_bytes
    merge_bytes = slab_bytes + x.numel() * 2
    with torch.no_grad():
        total = bench(fn, False, [])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
        with config_override(ksplit=0):
            one_program = bench(fn, False, [])
    floor_ms = floor_bytes / bw * 1e3
    print(f"shape {(Bt, K * Dm, L, N)}: fused fwd {total:.3f} ms, floor {floor_ms:.3f} ms ({total / floor_ms:.2f}x)")
    for e in sorted(p.key_averages(), key=lambda e: -e.self_device_time_total):
        if e.self_device_time_total > 0:
            print(f"   {e.self_device_time_total / 20 / 1e3:.3f} ms  {e.key[:60]}")
    print(f"   bytes with x read once per direction: scan {scan_bytes / 1e6:.0f} MB "
          f"(>= {scan_bytes / bw * 1e3:.3f} ms), merge {merge_bytes / 1e6:.0f} MB "
          f"(>= {merge_bytes / bw * 1e3:.3f} ms); floor {floor_bytes / 1e6:.0f} MB")
    print(f"   one program walking all K (in-place fp32 accumulation): {one_program:.3f} ms")

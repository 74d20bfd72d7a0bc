"""Device-session helper: the whole-image N = 1 SS2D forward (``kernel.py``) against the slab kernels.

``python -m benchmarks.experiments.whole_image.bench`` — for the two N = 1 shapes of ``gpu_scan.py`` (bf16, K = 4
sweep): max deviation from the slab kernels, then the forward time of the whole-image kernel on
channel-first inputs (default, each direction order, a lower register cap, other warp counts), of the slab fused
core on channel-last and channel-first inputs, and the memory floor, with kernel times from torch.profiler.
"""
import math

import torch

from benchmarks.experiments.whole_image.kernel import direction_codes, image_forward
from benchmarks.gpu_scan import bench, channel_last_copies, copy_bandwidth, make_inputs
from vision_ssm.ops import get_directions, ss2d_scan


def kernel_ms(fn, reps=20):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return {e.key[:50]: e.self_device_time_total / reps / 1e3 for e in p.key_averages() if e.self_device_time_total > 0}


def run_shape(Bt, K, Dm, L, N, bw):
    inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
    x, d, Bm, Cm = inp["x"], inp["delta"], inp["B"], inp["C"]
    xc, dc, Bc, Cc = channel_last_copies(x, d, Bm, Cm)
    H = math.isqrt(L)
    dirs = get_directions("sweep", H, H, K, "cuda")
    codes = direction_codes(dirs)
    with torch.no_grad():
        y_img = image_forward(x, d, inp["A"], Bm, Cm, inp["D"], inp["bias"], True, codes, H, H)
        y_slab = ss2d_scan(xc, dc, inp["A"], Bc, Cc, inp["D"], inp["bias"], dirs, True, backend="triton")
        y_ref = ss2d_scan(x[:2].float(), d[:2].float(), inp["A"], Bm[:2].float(), Cm[:2].float(), inp["D"],
                          inp["bias"], dirs, True, backend="chunked")
    err = (y_img.float() - y_slab.float()).abs().max().item()
    err_ref = (y_img[:2].float() - y_ref).abs().max().item()
    err_slab_ref = (y_slab[:2].float() - y_ref).abs().max().item()
    scale = y_ref.abs().max().item()
    print(f"shape {(Bt, K * Dm, L, N)}: max|img - slab| {err:.3g}, max|img - fp32 chunked| {err_ref:.3g}, "
          f"max|slab - fp32 chunked| {err_slab_ref:.3g} (max|y| {scale:.3g})")
    floor_bytes = x.numel() * 2 * 2 + d.numel() * 2 + (Bm.numel() + Cm.numel()) * 2
    floor_ms = floor_bytes / bw * 1e3
    for grouped, nreg, nw in [(None, None, None), (False, None, None), (True, None, None), (True, 96, None),
                              (True, None, 4), (True, None, 16), (False, None, 16)]:
        def fn(grouped=grouped, nreg=nreg, nw=nw):
            return image_forward(x, d, inp["A"], Bm, Cm, inp["D"], inp["bias"], True, codes, H, H, maxnreg=nreg,
                                 grouped=grouped, num_warps=nw)
        t = bench(fn, False, [])
        ks = kernel_ms(fn)
        order = "default" if grouped is None else ("grouped" if grouped else "k")
        print(f"   image fwd (channel-first; order {order}, maxnreg {nreg or 'default'}, warps {nw or 'default'}): "
              f"{t:.3f} ms "
              f"({t / floor_ms:.2f}x floor), kernels {sum(ks.values()):.3f} ms")
    t_cl = bench(lambda: ss2d_scan(xc, dc, inp["A"], Bc, Cc, inp["D"], inp["bias"], dirs, True, backend="triton"),
                 False, [])
    t_cf = bench(lambda: ss2d_scan(x, d, inp["A"], Bm, Cm, inp["D"], inp["bias"], dirs, True, backend="triton"),
                 False, [])
    print(f"   slab fused fwd: channel-last {t_cl:.3f} ms ({t_cl / floor_ms:.2f}x), channel-first {t_cf:.3f} ms; "
          f"floor {floor_ms:.3f} ms")


bw = copy_bandwidth()
print(f"copy bandwidth {bw / 1e9:.0f} GB/s")
for shape in [(128, 4, 96, 3136, 1), (64, 4, 384, 784, 1)]:
    run_shape(*shape, bw)

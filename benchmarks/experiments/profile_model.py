"""Device-session helper: where a training step of a model spends GPU time (torch.profiler).

``python -m benchmarks.experiments.profile_model [MODEL] [BATCH] [COMPILE_MODE]`` — bf16 autocast, 224 px,
AdamW step; ``COMPILE_MODE`` (e.g. ``default``) wraps the model in ``torch.compile`` first.
Prints the wall time of a step, the sum of its kernel times, kernel-time groups and the top kernels.
"""
import sys
import time

import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks.gpu_models import train_step


def kernel_profile(step, warmup: int = 5, iters: int = 10, reps: int = 3) -> tuple[float, list, float]:
    """Time ``step`` and profile its kernels: ``(wall ms per step, kernel events, kernel µs per step)``.

    ``warmup`` calls, then the mean wall time of ``iters`` calls, then ``reps`` calls under
    torch.profiler with CUDA activity only: every event is a kernel (or memcpy/memset), so the times
    add up without the double counting of an operator and the kernels it launched. The events'
    times and counts are totals over the ``reps`` calls.
    """
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / iters * 1e3
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        for _ in range(reps):
            step()
        torch.cuda.synchronize()
    ev = [e for e in p.key_averages() if e.self_device_time_total > 0]
    return wall, ev, sum(e.self_device_time_total for e in ev) / reps


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "vmamba_tiny_s1l8"
    bs = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    mode = sys.argv[3] if len(sys.argv) > 3 else "none"
    torch.backends.cudnn.benchmark = True
    model = timm.create_model(name, num_classes=1000).cuda()
    run = model if mode == "none" else torch.compile(model, mode=mode)
    step = train_step(run, bs, 224, params_of=model)
    reps = 3
    wall, ev, per_step = kernel_profile(step, reps=reps)
    total = per_step * reps  # kernel µs over the profiled steps, as the events' totals
    print(f"{name} bs{bs} compile={mode}: wall {wall:.1f} ms per step; GPU kernel time {per_step / 1e3:.1f} ms "
          "(sum of kernel times)")
    groups = {"scan kernels (_scan_fwd/_scan_bwd/_sum_slabs)": ("_scan_", "_sum_slabs"), "layer norm": ("layer_norm",
              "GammaBeta"), "GEMM (gemm/cutlass/cublas)": ("gemm", "cutlass", "sm90_xmma", "nvjet"),
              "convolution (cudnn/depthwise)": ("conv", "depthwise", "cudnn"), "copies / casts": ("copy",),
              "optimizer (AdamW foreach)": ("multi_tensor", "foreach"), "inductor (triton_*)": ("triton_",)}
    for gname, keys in groups.items():
        t = sum(e.self_device_time_total for e in ev if any(k in e.key for k in keys))
        print(f"  {gname:48s} {t / reps / 1e3:7.2f} ms {100 * t / total:5.1f}%")
    for e in sorted(ev, key=lambda e: -e.self_device_time_total)[:25]:
        t = e.self_device_time_total
        print(f"{t / reps / 1e3:8.2f} ms {100 * t / total:5.1f}%  {e.count // reps:4d}x  {e.key[:90]}")
    # host side: CUDA runtime/driver calls (launches, synchronisations, allocations) and the operators
    # with the most self CPU time
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    cpu = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)
    print("host: top self CPU time per step")
    for e in cpu[:25]:
        print(f"{e.self_cpu_time_total / 3 / 1e3:8.2f} ms  {e.count // 3:5d}x  {e.key[:90]}")


if __name__ == "__main__":
    main()

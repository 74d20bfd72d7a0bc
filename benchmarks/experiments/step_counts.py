"""Device-session helper: kernel launches and host vs GPU time of one eager training step.

``python -m benchmarks.experiments.step_counts [ROOT] [TAG]`` imports ``vision_ssm`` from ``ROOT``
(default: this checkout or the installed package; e.g. an exported older commit, for A/B runs
alternating in one session), runs bf16-autocast training steps of ``vmamba_tiny_s1l8`` (batch 64,
224 px, AdamW) and inference (batch 128), and prints one JSON line: step time (CUDA events around
25 steps, which a host-bound step keeps apart by its wall time), kernels per step and their summed
GPU time, ``cudaLaunchKernel`` calls, the host time of the fused SS2D core, throughputs, the most
frequent kernels and the kernels of one step counted by the operator that launched them
(torch.profiler).
"""
import json
import sys
from collections import Counter

root = sys.argv[1] if len(sys.argv) > 1 else None
tag = sys.argv[2] if len(sys.argv) > 2 else "this"
if root is not None:  # the A/B feature: the library under test comes from ROOT
    sys.path.insert(0, root)

import timm  # noqa: E402
import torch  # noqa: E402

import vision_ssm  # noqa: E402

assert root is None or vision_ssm.__file__.startswith(root), vision_ssm.__file__
from benchmarks.common import measure  # noqa: E402  (after vision_ssm: ROOT's copy stays)
from benchmarks.gpu_models import train_step  # noqa: E402


def _median_ms(step, warmup: int, iters: int) -> float:
    return measure({"step": step}, warmup=warmup, windows=1, iters=iters, device="cuda")["step"].median


torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
model = timm.create_model("vmamba_tiny_s1l8", num_classes=1000).cuda()
step = train_step(model, 64, 224)


res = {"tag": tag, "train_ms": _median_ms(step, 5, 25)}
res["train_img_s"] = 64e3 / res["train_ms"]
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
    for _ in range(2):
        step()
    torch.cuda.synchronize()
kern = [e for e in p.key_averages() if e.self_device_time_total > 0]
res["kernels_per_step"] = sum(e.count for e in kern) / 2
res["kernel_ms_per_step"] = sum(e.self_device_time_total for e in kern) / 2e3
res["top_kernels"] = [(e.key[:70], e.count / 2) for e in sorted(kern, key=lambda e: -e.count)[:12]]
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
    for _ in range(2):
        step()
    torch.cuda.synchronize()
cpu = p.key_averages()
res["cudaLaunchKernel_calls"] = sum(e.count for e in cpu if e.key in ("cudaLaunchKernel", "cuLaunchKernel",
                                                                       "cuLaunchKernelEx")) / 2
res["host_ss2d_core_ms"] = sum(e.self_cpu_time_total for e in cpu if "SS2DFn" in e.key) / 2e3
# which operator launched each kernel (the innermost profiled CPU event around the launch)
PA = torch.profiler.ProfilerActivity
with torch.profiler.profile(activities=[PA.CPU, PA.CUDA]) as p:
    step()
    torch.cuda.synchronize()
by_op, by_chain = Counter(), Counter()
for e in p.events():
    if e.kernels:
        by_op[e.name] += len(e.kernels)
        chain, q = [e.name], e.cpu_parent
        while q is not None and len(chain) < 4:  # the operators above it (autograd nodes, autocast casts)
            chain.append(q.name)
            q = q.cpu_parent
        by_chain[" < ".join(chain)] += len(e.kernels)
res["kernels_by_launching_op"] = dict(by_op.most_common(30))
res["kernels_by_op_chain"] = dict(by_chain.most_common(40))
model.eval()
xi = torch.randn(128, 3, 224, 224, device="cuda")


def infer():
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        model(xi)


res["infer_img_s"] = 128e3 / _median_ms(infer, 5, 25)
print(json.dumps(res))

"""Device-session helper: where a training step of a model spends GPU time (torch.profiler).

``python benchmarks/_profile_model.py [MODEL] [BATCH]`` — bf16 autocast, 224 px, AdamW step.
"""
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision_ssm  # noqa: E402,F401

name = sys.argv[1] if len(sys.argv) > 1 else "vmamba_tiny_s1l8"
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 64
model = timm.create_model(name, num_classes=1000).cuda().train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(bs, 3, 224, 224, device="cuda")
y = torch.randint(0, 1000, (bs,), device="cuda")


def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for _ in range(5):
    step()
torch.cuda.synchronize()
acts = [torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]
with torch.profiler.profile(activities=acts) as p:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
ev = [e for e in p.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA or e.self_device_time_total > 0]
total = sum(e.self_device_time_total for e in ev)
print(f"{name} bs{bs}: GPU kernel time per step {total / 3 / 1e3:.1f} ms")
for e in sorted(ev, key=lambda e: -e.self_device_time_total)[:22]:
    t = e.self_device_time_total
    print(f"{t / 3 / 1e3:8.2f} ms {100 * t / total:5.1f}%  {e.count // 3:4d}x  {e.key[:90]}")

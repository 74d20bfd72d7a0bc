"""Device-session helper: our model and its official counterpart under torch.profiler, side by side.

``python -m benchmarks.experiments.profile_pair MODEL KIND=PATH [BATCH_TRAIN] [BATCH_INFER]``, e.g.
``python -m benchmarks.experiments.profile_pair mambavision_tiny mambavision=~/src/MambaVision``.
For a training step (bf16 autocast, AdamW) and an inference step of each model: the wall time per step
(mean of 10 after warm-up), the sum of its GPU kernel times, the number of kernels launched, the GPU idle
share (wall minus kernel time), and the kernels with the most time, so that a gap between the two
implementations can be traced to kernels (GPU-bound) or to launches (host-bound).
"""
import sys
from collections.abc import Callable, Iterator

import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks.experiments.profile_model import kernel_profile
from benchmarks.gpu_models import infer_step, train_step
from benchmarks.official import official_builder


def profile(label: str, step, top: int = 12, reps: int = 3) -> None:
    wall, ev, kernel_us = kernel_profile(step, reps=reps)
    total = kernel_us / 1e3  # kernel ms per step
    launches = sum(e.count for e in ev) // reps
    print(f"\n{label}: wall {wall:.2f} ms/step, kernels {total:.2f} ms ({launches} launches), GPU idle "
          f"{max(0.0, 100 * (1 - total / wall)):.0f}%")
    for e in sorted(ev, key=lambda e: -e.self_device_time_total)[:top]:
        t = e.self_device_time_total / reps / 1e3
        print(f"  {t:7.2f} ms {100 * t / total:5.1f}% {e.count // reps:5d}x  {e.key[:100]}")


def pair_steps(argv: list[str]) -> Iterator[tuple[str, torch.nn.Module, Callable[[], None]]]:
    """``(label, model, step)`` for ``MODEL KIND=PATH [BATCH_TRAIN] [BATCH_INFER]``: the training steps of our
    model and its official counterpart, then their inference steps (training first: tensors cached under
    inference_mode must not leak into autograd). Shared with ``host_pair``.

    A generator: each step is built when it is reached, after the previous one has been used, because building
    a step sets its model's mode (``train_step`` train, ``infer_step`` eval).
    """
    name = argv[0]
    kind, path = argv[1].split("=", 1)
    bs_train = int(argv[2]) if len(argv) > 2 else 64
    bs_infer = int(argv[3]) if len(argv) > 3 else 128
    torch.backends.cudnn.benchmark = True
    build, label = official_builder(name, {kind: path})
    models = {name: timm.create_model(name, num_classes=1000).cuda(), label: build().cuda()}
    for lab, m in models.items():
        yield f"{lab} training bs{bs_train}", m, train_step(m, bs_train, 224)
    for lab, m in models.items():
        yield f"{lab} inference bs{bs_infer}", m, infer_step(m, bs_infer, 224)


def main() -> None:
    for label, _, step in pair_steps(sys.argv[1:]):
        profile(label, step)


if __name__ == "__main__":
    main()

"""Device-session helper: where the *host* time of a step goes, our model next to its official counterpart.

``python -m benchmarks.experiments.host_pair MODEL KIND=PATH [BATCH_TRAIN] [BATCH_INFER]``, e.g.
``python -m benchmarks.experiments.host_pair mambavision_tiny mambavision=~/src/MambaVision``.

``profile_pair`` shows when a step leaves the GPU idle; this script shows why. For the inference step (and the
training step) of both models it prints:

- the host time of one step with the GPU held busy (``torch.cuda._sleep`` queued first, so that no launch waits
  for the device): what Python, the dispatcher and the launchers cost, without any device wait;
- the wall time of the same step run back to back, and the same with Python's garbage collector frozen
  (``gc.freeze``), with the number of collections that ran per step;
- the device syncs that happen inside a step (``torch.cuda.set_sync_debug_mode``);
- the host time per module at depth 1 and 2 (forward hooks, GPU held busy);
- cProfile's functions with the most own time.
"""
from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
import warnings

import torch

from benchmarks.experiments.profile_pair import pair_steps

BUSY = int(3e8)  # GPU clock cycles queued before a host-timed step (~0.15 s on an H200)


def host_ms(step, n: int = 15) -> float:
    """Median host ms of ``step`` while the GPU is still busy with an earlier sleep kernel."""
    ts = []
    for _ in range(n):
        torch.cuda._sleep(BUSY)
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
        torch.cuda.synchronize()
    return statistics.median(ts) * 1e3


def wall_ms(step, n: int = 30) -> tuple[float, float]:
    """Wall ms per step back to back, and garbage collections per step."""
    counts = [0]

    def cb(phase, info):
        if phase == "start":
            counts[0] += 1

    gc.callbacks.append(cb)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    gc.callbacks.remove(cb)
    return (time.perf_counter() - t) / n * 1e3, counts[0] / n


def syncs(step) -> list[str]:
    """The distinct device-sync warnings raised during one step."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sorted({str(w.message).splitlines()[0][:160] for w in rec})


def module_host(model, step, depth: int = 2, top: int = 14) -> list[tuple[float, str, int]]:
    """Host ms per step spent inside each module of depth <= ``depth`` (GPU held busy), largest first."""
    acc: dict[str, list] = {}
    hooks = []
    for name, mod in model.named_modules():
        if not name or name.count(".") >= depth:
            continue
        acc[name] = [0.0, 0, 0.0]

        def pre(m, a, name=name):
            acc[name][2] = time.perf_counter()

        def post(m, a, o, name=name):
            acc[name][0] += time.perf_counter() - acc[name][2]
            acc[name][1] += 1

        hooks += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    n = 5
    for _ in range(n):
        torch.cuda._sleep(BUSY)
        step()
        torch.cuda.synchronize()
    for h in hooks:
        h.remove()
    rows = [(v[0] / n * 1e3, k, v[1] // n) for k, v in acc.items()]
    return sorted(rows, reverse=True)[:top]


def cprofile_top(step, top: int = 22) -> str:
    pr = cProfile.Profile()
    for _ in range(5):
        torch.cuda._sleep(BUSY)
        pr.enable()
        step()
        pr.disable()
        torch.cuda.synchronize()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    lines = s.getvalue().splitlines()
    start = next(i for i, ln in enumerate(lines) if "ncalls" in ln)
    return "\n".join(lines[start:start + top + 1])


def report(label: str, model, step) -> None:
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    h = host_ms(step)
    w, g = wall_ms(step)
    gc.freeze()
    gc.disable()
    wf, _ = wall_ms(step)
    gc.enable()
    gc.unfreeze()
    print(f"\n=== {label}: host {h:.2f} ms/step (GPU busy) | wall {w:.2f} ms/step, {g:.2f} gc runs/step | "
          f"wall with gc off {wf:.2f} ms/step")
    print("  syncs in a step:", syncs(step) or "none")
    print("  host ms per module in the forward (depth <= 2):")
    for ms, name, calls in module_host(model, step):
        print(f"    {ms:7.2f} ms  {calls:3d}x  {name}")
    print("  cProfile (5 steps, own time):")
    print("    " + cprofile_top(step).replace("\n", "\n    "))


def main() -> None:
    for label, model, step in pair_steps(sys.argv[1:]):
        report(label, model, step)


if __name__ == "__main__":
    main()

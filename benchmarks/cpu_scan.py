"""CPU selective-scan benchmark: every CPU backend against the reference loop at SS2D shapes.

Usage::

    python benchmarks/cpu_scan.py                 # both shapes, every available CPU backend
    python benchmarks/cpu_scan.py --threads 2 --repeat 5 --backends chunked numba

For each shape and backend it prints the best-of-``repeat`` wall time of the forward
(``torch.no_grad``) and of forward+backward, the speed-up over the ``reference`` loop, and the
memory autograd saves for backward (the sum of the tensors saved by the graph).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch

from vision_ssm.ops import available_backends, selective_scan

# (name, B, D, L, N, G): SS2D stage-1 shapes, K=4 directions folded into D and the groups.
SHAPES = [
    ("vmamba s1l8 (D=4x96, N=1)", 1, 4 * 96, 3136, 1, 4),
    ("vanilla vmamba (D=4x192, N=16)", 1, 4 * 192, 3136, 16, 4),
]


def make_inputs(B: int, D: int, L: int, N: int, G: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        u=torch.randn(B, D, L, generator=g),
        delta=torch.randn(B, D, L, generator=g) * 0.5 - 2.0,
        A=-torch.exp(torch.randn(D, N, generator=g) * 0.5),
        B=torch.randn(B, G, N, L, generator=g),
        C=torch.randn(B, G, N, L, generator=g),
        D=torch.randn(D, generator=g),
        delta_bias=torch.randn(D, generator=g) * 0.1,
    )


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves while running ``fn`` (deduplicated by storage)."""
    seen: dict[int, int] = {}

    def pack(t):
        try:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        except Exception:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def run_once(backend: str, inputs: dict, backward: bool) -> float:
    if backward:
        args = {k: v.clone().requires_grad_() for k, v in inputs.items()}
        t0 = time.perf_counter()
        out = selective_scan(**args, delta_softplus=True, backend=backend)
        out.sum().backward()
        return time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        selective_scan(**inputs, delta_softplus=True, backend=backend)
        return time.perf_counter() - t0


def bench(backend: str, inputs: dict, backward: bool, repeat: int) -> float:
    run_once(backend, inputs, backward)  # warm-up (numba compile/cache load, allocator)
    return min(run_once(backend, inputs, backward) for _ in range(repeat))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch/numba threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (best is reported)")
    ap.add_argument("--ref-repeat", type=int, default=1, help="timed runs for the slow reference loop")
    ap.add_argument("--backends", nargs="*", default=None, help="CPU backends to time (default: all available)")
    ap.add_argument("--shapes", nargs="*", type=int, default=None, help="indices into SHAPES (default: all)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import numba

            numba.set_num_threads(args.threads)
        except ImportError:
            pass
    backends = args.backends or [b for b in available_backends("cpu") if b != "reference"]
    print(f"# {datetime.date.today()} | {platform.processor() or platform.machine()} | "
          f"threads={torch.get_num_threads()} | torch {torch.__version__} | "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'shape':32s} {'backend':10s} {'fwd ms':>9s} {'x loop':>7s} "
          f"{'fwd+bwd ms':>11s} {'x loop':>7s} {'saved MB':>9s}")
    for i, (name, B, D, L, N, G) in enumerate(SHAPES):
        if args.shapes is not None and i not in args.shapes:
            continue
        inputs = make_inputs(B, D, L, N, G)
        rows = {}
        for be in ["reference"] + backends:
            rep = args.ref_repeat if be == "reference" else args.repeat
            f = bench(be, inputs, False, rep)
            fb = bench(be, inputs, True, rep)
            args_g = {k: v.clone().requires_grad_() for k, v in inputs.items()}
            mb = saved_bytes(lambda be=be, a=args_g: selective_scan(**a, delta_softplus=True, backend=be)) / 2**20
            rows[be] = (f, fb, mb)
        f0, fb0, _ = rows["reference"]
        for be, (f, fb, mb) in rows.items():
            print(f"{name:32s} {be:10s} {f * 1e3:9.1f} {f0 / f:7.1f} {fb * 1e3:11.1f} {fb0 / fb:7.1f} {mb:9.1f}")


if __name__ == "__main__":
    main()

"""CPU inference latency of whole models against timm's ``convnext_tiny``, in the same run.

Usage (from the repository root)::

    python -m benchmarks.cpu_models                       # batch 1, 224x224, every available CPU backend
    python -m benchmarks.cpu_models --threads 2 --backends chunked numba --windows 7 --json cpu_models.json
    python -m benchmarks.cpu_models --profile vmamba_tiny_s1l8:chunked    # torch.profiler table, one model

For each model and selective-scan backend it prints the median latency of ``model(x)`` under
``torch.inference_mode`` (fp32, ``--windows`` timed windows after ``--warmup`` calls; every
configuration runs once per window, in turn, so slow phases of a shared machine hit all of them)
and its ratio to ``convnext_tiny`` measured in the same windows: issue #21's anchors
(``vmamba_tiny_s1l8`` ≤ 1.5×, ``mambavision_tiny`` ≤ 1.0× in the core install, i.e. without numba).
Nothing is asserted.
"""
from __future__ import annotations

import torch

from benchmarks import common

MODELS = ["vmamba_tiny_s1l8", "mambavision_tiny"]
BASELINE = "convnext_tiny"


def build(name: str, backend: str | None, size: int) -> torch.nn.Module:
    import timm

    import vision_ssm  # noqa: F401  (registers the models)

    kwargs = {} if backend is None else {"backend": backend}
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def profile(spec: str, size: int, batch: int, rows: int = 25) -> None:
    """Print torch.profiler's table (self CPU time) for one ``model:backend`` forward."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    name, _, backend = spec.partition(":")
    model = build(name, backend or None, size)
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        with tprofile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            model(x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    from vision_ssm.ops import available_backends

    p = common.parser(__doc__)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--backends", nargs="+", default=None,
                   help="selective-scan backends (default: every available CPU backend, then automatic)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--profile", default=None, metavar="MODEL[:BACKEND]", help="profile one forward instead")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    env = common.environment("cpu")
    common.print_header(env, f"batch {args.batch}, {args.size}x{args.size}, fp32, inference_mode")
    if args.profile:
        profile(args.profile, args.size, args.batch)
        return 0
    cpu_backends = [b for b in ("chunked", "numba") if b in available_backends("cpu")]
    backends = args.backends or cpu_backends
    x = torch.randn(args.batch, 3, args.size, args.size)
    models = {BASELINE: build(BASELINE, None, args.size)}
    for name in args.models:
        for b in backends:
            models[f"{name} [{b}]"] = build(name, b, args.size)
        models[f"{name} [auto]"] = build(name, None, args.size)

    def call(m: torch.nn.Module):
        def fn():
            with torch.inference_mode():
                m(x)
        return fn

    stats = common.measure({k: call(m) for k, m in models.items()}, warmup=args.warmup, windows=args.windows)
    base = stats[BASELINE].median
    print(f"{'model [backend]':38s} {'median':>10s} {'windows':>21s} {'/ ' + BASELINE:>18s}")
    for k, s in stats.items():
        print(f"{k:38s} {s.median:8.1f} ms  ({s.lo:7.1f}-{s.hi:7.1f} ms)  {s.median / base:8.2f}x")
    common.finish(args.json, env, {"batch": args.batch, "size": args.size, "stats": stats,
                                    "ratios": {k: s.median / base for k, s in stats.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

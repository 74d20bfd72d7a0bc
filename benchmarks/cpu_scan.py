"""CPU selective-scan benchmark: every CPU backend against the reference loop at SS2D shapes.

Usage (from the repository root)::

    python -m benchmarks.cpu_scan                 # both shapes, every available CPU backend
    python -m benchmarks.cpu_scan --threads 2 --repeat 5 --backends chunked numba --json cpu.json

For each shape and backend it prints the median wall time (over ``--repeat`` windows after one
warm-up; the backends alternate window by window) of the forward (``torch.no_grad``) and of
forward+backward, the spread of the windows, the speed-up over the ``reference`` loop, and the
memory autograd saves for backward (the sum of the tensors saved by the graph).
"""
from __future__ import annotations

import torch

from benchmarks import common
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


def call(backend: str, inputs: dict, backward: bool):
    """One forward (no grad) or forward + backward of ``backend`` on ``inputs`` (a closure)."""
    if not backward:
        def fwd():
            with torch.no_grad():
                selective_scan(**inputs, delta_softplus=True, backend=backend)
        return fwd
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}

    def fwd_bwd():
        selective_scan(**leaves, delta_softplus=True, backend=backend).sum().backward()
        for t in leaves.values():
            t.grad = None
    return fwd_bwd


def main(argv: list[str] | None = None) -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--repeat", type=int, default=3, help="timed windows per measurement (median reported)")
    ap.add_argument("--ref-repeat", type=int, default=1, help="timed windows for the slow reference loop")
    ap.add_argument("--backends", nargs="*", default=None, help="CPU backends to time (default: all available)")
    ap.add_argument("--shapes", nargs="*", type=int, default=None, help="indices into SHAPES (default: all)")
    args = ap.parse_args(argv)
    common.set_threads(args.threads)
    backends = args.backends or [b for b in available_backends("cpu") if b != "reference"]
    env = common.environment()
    common.print_header(env)
    print(f"{'shape':32s} {'backend':10s} {'fwd ms':>9s} {'spread':>6s} {'x loop':>7s} "
          f"{'fwd+bwd ms':>11s} {'spread':>6s} {'x loop':>7s} {'saved MB':>9s}")
    results = []
    for i, (name, B, D, L, N, G) in enumerate(SHAPES):
        if args.shapes is not None and i not in args.shapes:
            continue
        inputs = make_inputs(B, D, L, N, G)
        rows = {}
        for backward in (False, True):
            t = common.measure({"reference": call("reference", inputs, backward)}, windows=args.ref_repeat)
            t |= common.measure({be: call(be, inputs, backward) for be in backends}, windows=args.repeat)
            for be, st in t.items():
                rows.setdefault(be, {})["fwdbwd" if backward else "fwd"] = st
        for be in rows:
            args_g = {k: v.clone().requires_grad_() for k, v in inputs.items()}
            rows[be]["saved_MB"] = saved_bytes(
                lambda be=be, a=args_g: selective_scan(**a, delta_softplus=True, backend=be)) / 2**20
        f0, fb0 = rows["reference"]["fwd"].median, rows["reference"]["fwdbwd"].median
        for be, r in rows.items():
            f, fb = r["fwd"], r["fwdbwd"]
            print(f"{name:32s} {be:10s} {f.median:9.1f} {100 * f.spread:5.0f}% {f0 / f.median:7.1f} "
                  f"{fb.median:11.1f} {100 * fb.spread:5.0f}% {fb0 / fb.median:7.1f} {r['saved_MB']:9.1f}")
            results.append({"shape": name, "backend": be, **r})
    common.finish(args.json, env, results)


if __name__ == "__main__":
    main()

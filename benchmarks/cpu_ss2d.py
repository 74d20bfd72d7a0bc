"""CPU SS2D core without gradients: the numba backend's fused kernel against its generic route → scan → merge.

Usage (from the repository root)::

    python -m benchmarks.cpu_ss2d                 # VMamba-T s1l8 stage shapes, sweep-4; Hilbert-8; N = 16
    python -m benchmarks.cpu_ss2d --threads 1 --windows 21

For each shape it prints the median ms (``--windows`` windows after three warm-up calls; the
configurations alternate window by window) of ``ss2d_scan(..., backend="numba")`` (fused, on
channel-first and on channel-last inputs; the latter is used for ``d_state <= 4``), the same
op through route → numba scan → merge (generic) and through the ``chunked`` backend, and the ratios.
Nothing is asserted.
"""
from __future__ import annotations

import torch

from benchmarks import common

# (family, K, D, H, N): VMamba-T s1l8's four stages (N = 1), then an 8-direction Hilbert block and N = 16
SHAPES = [("sweep", 4, 96, 56, 1), ("sweep", 4, 192, 28, 1), ("sweep", 4, 384, 14, 1), ("sweep", 4, 768, 7, 1),
          ("hilbert", 8, 96, 56, 1), ("sweep", 4, 96, 56, 16)]


def inputs(K: int, Dm: int, H: int, N: int, seed: int = 0) -> list[torch.Tensor]:
    L = H * H
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return [rn(1, Dm, L), rn(1, K, Dm, L) * 0.5 - 1.0, -torch.rand(K * Dm, N, generator=g) - 0.1,
            rn(1, K, N, L), rn(1, K, N, L), rn(K * Dm), rn(K * Dm) * 0.1]


def main(argv: list[str] | None = None) -> int:
    from vision_ssm.ops import get_directions, ss2d_scan
    from vision_ssm.ops.scan.ss2d import route_scan_merge

    p = common.parser(__doc__)
    p.add_argument("--windows", type=int, default=15)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    env = common.environment("cpu")
    common.print_header(env, "ss2d_scan, batch 1, fp32, inference_mode")
    results = {}
    for fam, K, Dm, H, N in SHAPES:
        dirs = get_directions(fam, H, H, K)
        a = inputs(K, Dm, H, N)
        # the same values on channel-last memory (what SS2D hands the op on CPU for inference, d_state <= 4)
        x, d, A, B, C, Dv, bias = a
        cl = [x.transpose(1, 2).contiguous().transpose(1, 2), d.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1),
              A, B.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1),
              C.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1), Dv, bias]
        fns = {"fused": lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, backend="numba"),
               "fused-cl": lambda cl=cl, dirs=dirs: ss2d_scan(*cl, dirs, backend="numba"),
               "generic": lambda a=a, dirs=dirs: route_scan_merge(*a, dirs, True, "numba"),
               "chunked": lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, backend="chunked")}
        with torch.inference_mode():
            s = common.measure(fns, warmup=3, windows=args.windows)
        name = f"{fam}-{K} D={Dm} {H}x{H} N={N}"
        results[name] = s
        print(f"{name:30s} fused {s['fused'].median:7.2f} ms  fused channel-last {s['fused-cl'].median:7.2f} ms  "
              f"generic {s['generic'].median:7.2f} ms  "
              f"chunked {s['chunked'].median:7.2f} ms  generic/fused {s['generic'].median / s['fused'].median:5.2f}x")
    common.finish(args.json, env, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Device-session helper: fused SS2D core on channel-first inputs, by what is copied to channel-last first.

``python -m benchmarks.experiments.cf_layout [--all]`` — policies: 1 copies x, delta, B, C (the
library's ``kernel_layout``), 3 x and delta only, 2 all but delta, 0 nothing (the kernels read
channel-first memory strided); ``cl`` = inputs already channel-last (no copy needed). Median ms,
forward and forward+backward.

The library has no switch for this (it used to read one from a global override dict): the
variants are swapped in here by replacing ``vision_ssm.ops.triton.scan.kernel_layout`` for the
duration of a measurement.
"""
import contextlib
import sys

import torch

import vision_ssm.ops.triton.scan as triton_scan
from benchmarks.gpu_scan import SHAPES, bench, channel_last_copies, make_inputs
from vision_ssm.ops import get_directions, ss2d_scan

_cl = triton_scan._channels_last
_LIBRARY_LAYOUT = triton_scan.kernel_layout
POLICIES = {
    0: lambda x, d, B, C: (x, d, B, C),
    2: lambda x, d, B, C: (_cl(x, 1), d, _cl(B, 2), _cl(C, 2)),
    3: lambda x, d, B, C: (_cl(x, 1), _cl(d, 2), B, C),
}


@contextlib.contextmanager
def layout_policy(policy: int):
    """Run the fused core with ``policy`` (1: the library's own layout step)."""
    triton_scan.kernel_layout = POLICIES.get(policy, _LIBRARY_LAYOUT)
    try:
        yield
    finally:
        triton_scan.kernel_layout = _LIBRARY_LAYOUT


for Bt, K, Dm, L, N in SHAPES:
    H = W = int(L ** 0.5)
    dirs = get_directions("sweep", H, W, K, "cuda")
    inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
    args = [inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias")]
    x, d, A, B, C, D, bias = args
    x_cl, d_cl, B_cl, C_cl = channel_last_copies(x, d, B, C)
    cl = [x_cl, d_cl, A, B_cl, C_cl, D, bias]
    out = []
    variants = [("copy all", 1, args), ("copy x,delta", 3, args), ("cl", 1, cl)]
    if "--all" in sys.argv:
        variants += [("copy x,B,C", 2, args), ("no copy", 0, args)]
    for name, policy, a in variants:
        with layout_policy(policy):
            f = bench(lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, True, backend="triton"), False, a)
            fb = bench(lambda a=a, dirs=dirs: ss2d_scan(*a, dirs, True, backend="triton"), True, a)
        out.append(f"{name}: {f:.3f} / {fb:.3f}")
    print((Bt, K * Dm, L, N), " | ".join(out), flush=True)

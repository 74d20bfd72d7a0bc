"""Tests of the parked whole-image kernel (moved from ``tests/triton``; run with
``python -m pytest benchmarks/experiments`` or the default ``pytest``, whose ``testpaths`` include
this folder).

The interpreter cases (``interp_cases.py``) run in a child pytest process with
``TRITON_INTERPRET=1`` set before triton is imported, as ``tests/ops/triton/test_triton_interpreter.py``
does for the library's kernels; the model-size case needs a GPU (``-m gpu``).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_whole_image_kernel_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
           "-o", "python_files=interp_*cases.py", str(HERE / "interp_cases.py")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout, r.stdout[-2000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("H,W,K", [(56, 56, 4), (28, 28, 4), (14, 14, 2), (9, 31, 4), (64, 128, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ss2d_image_forward_matches_reference(H, W, K, dtype):
    """The whole-image N = 1 forward (channel-first inputs, no gradients) at model sizes."""
    from benchmarks.experiments.whole_image.kernel import image_plan, ss2d_forward
    from vision_ssm.ops import get_directions, ss2d_scan

    dev = "cuda"
    Bt, Dm, L = 2, 24, H * W
    dirs = get_directions("sweep", H, W, K, dev)
    g = torch.Generator(device=dev).manual_seed(H + K)
    rn = lambda *s: torch.randn(*s, device=dev, generator=g)  # noqa: E731
    args = [rn(Bt, Dm, L).to(dtype), (0.5 * rn(Bt, K, Dm, L)).to(dtype),
            -torch.rand(K * Dm, 1, device=dev, generator=g), rn(Bt, K, 1, L).to(dtype), rn(Bt, K, 1, L).to(dtype),
            rn(K * Dm), torch.rand(K * Dm, device=dev, generator=g)]
    assert image_plan(*args[:5], dirs) is not None
    with torch.no_grad():
        got = ss2d_forward(*args, dirs, True)
        again = ss2d_forward(*args, dirs, True)
        slab = ss2d_scan(*args, dirs, True)  # the library: the slab kernels
    assert got.is_contiguous() and not slab.is_contiguous()
    ref = ss2d_scan(*[a.float() for a in args], dirs, True, backend="reference")
    rtol, atol = TOL[dtype]
    for name, a, b in (("out", got, ref), ("out vs slab", got, slab)):
        assert a.dtype == dtype and torch.isfinite(a.float()).all(), name
        torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")
    assert torch.equal(got, again)

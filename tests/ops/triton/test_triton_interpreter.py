"""CPU checks of the Triton backend: kernels under Triton's interpreter, lazy import, registration.

``TRITON_INTERPRET=1`` only takes effect if it is set before triton is imported, and the rest of
the suite imports triton early (timm does), so the interpreter cases in ``interp_cases.py`` run in
a child pytest process with that variable set.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

import vision_ssm.ops as ops

HERE = Path(__file__).resolve().parent
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")


@needs_triton
def test_triton_kernels_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
           "-o", "python_files=interp_*cases.py", str(HERE / "interp_cases.py")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout, r.stdout[-2000:]


def test_triton_backend_registered_for_cuda_only():
    spec = ops.scan.registry.get_backend_spec("triton")
    assert spec.devices == ("cuda",)
    assert spec.priority["cuda"] > ops.scan.registry.get_backend_spec("mamba_ssm").priority["cuda"]
    assert spec.ss2d_target == "vision_ssm.ops.triton:ss2d_scan_triton"


def test_import_never_loads_the_triton_backend():
    """``import vision_ssm`` works with triton unimportable and leaves the kernels unloaded."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, vision_ssm, vision_ssm.ops as o\n"
        "assert 'vision_ssm.ops.triton' not in sys.modules\n"
        "assert 'triton' not in o.available_backends()\n"
        "u = torch.randn(1, 2, 5); y = o.selective_scan(u, torch.rand(1, 2, 5), -torch.rand(2, 1),"
        " torch.randn(1, 1, 5), torch.randn(1, 1, 5))\n"
        "assert 'vision_ssm.ops.triton' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cpu_tensors_rejected_without_interpreter(monkeypatch):
    pytest.importorskip("triton")
    import torch

    from vision_ssm.ops.triton._launch import check_device

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA"):
        check_device(torch.zeros(1))


def test_slices_beyond_int32_offsets_are_rejected():
    """The kernels use 32-bit offsets inside one (batch, direction) slice: a larger slice must
    raise instead of silently wrapping around."""
    pytest.importorskip("triton")
    import torch

    from vision_ssm.ops.triton._launch import _check_offsets

    small = torch.zeros(2, 3, 5)
    _check_offsets((small, 1))  # fine

    class _Huge:  # shape/strides of a (2, 4, 2**31) tensor without allocating it
        shape = (2, 4, 2**31)

        def stride(self):
            return (4 * 2**31, 2**31, 1)

        def dim(self):
            return 3

    _check_offsets((_Huge(), 3))  # nothing below the bases to check
    with pytest.raises(ValueError, match="2\\*\\*31"):
        _check_offsets((_Huge(), 1))


def _layouts():
    import torch

    base = torch.empty(2, 5, 4, 3)
    return [
        torch.empty(2, 4, 3, 5),  # contiguous
        base.permute(0, 2, 3, 1),  # channel-last memory (what the SS2D layer passes on CUDA)
        torch.empty(2, 4, 3, 10)[..., ::2],  # gaps
        torch.empty(1, 4, 1, 5),  # size-1 dims with arbitrary strides
        torch.empty(4, 1, 3, 1).expand(4, 2, 3, 5),  # broadcast (stride 0)
        torch.empty(2, 3, 5, 4).transpose(2, 3)[:, :, :2],  # permuted with a gap
    ]


@pytest.mark.parametrize("case", range(6))
def test_ddelta_strides_match_empty_like(case):
    """The gradient of ``delta`` is laid out as ``torch.empty_like(delta)`` (what the fake
    implementation promises); the fast path for dense layouts must agree with it."""
    pytest.importorskip("triton")
    import torch

    from vision_ssm.ops.triton.scan import ddelta_stride

    t = _layouts()[case]
    assert ddelta_stride(t) == torch.empty_like(t, device="meta").stride()


def test_tile_config_cache_follows_overrides():
    pytest.importorskip("triton")
    from vision_ssm.ops.triton._launch import config_override, pick_config

    default = pick_config(16, 3136, 192)
    with config_override(T=4, BD_bwd=8):
        forced = pick_config(16, 3136, 192)
    assert (forced.T, forced.BD_bwd) == (4, 8)
    assert pick_config(16, 3136, 192) == default != forced


def test_tile_override_is_typed_and_nests():
    """The one testing/tuning hook: named tile parameters only (no ad-hoc switches), nested
    blocks merge, and leaving a block restores the outer setting."""
    pytest.importorskip("triton")
    from vision_ssm.ops.triton import _launch

    with pytest.raises(TypeError):
        with _launch.config_override(cf_copy=0):
            pass
    with _launch.config_override(ksplit=0, num_warps=2) as outer:
        assert outer == _launch.TileOverride(nw_fwd=2, nw_bwd=2, ksplit=False)
        assert not _launch.use_ksplit(4)
        with _launch.config_override(T=4, nw_bwd=1) as inner:
            assert inner == _launch.TileOverride(T=4, nw_fwd=2, nw_bwd=1, ksplit=False)
        assert _launch._FORCED == outer
    assert _launch._FORCED == _launch.TileOverride() and _launch.use_ksplit(4) and not _launch.use_ksplit(1)


def test_backend_triton_on_cpu_without_interpreter_says_how(monkeypatch):
    """Without ``TRITON_INTERPRET=1``, ``backend="triton"`` on CPU is refused with a message naming the
    variable (with it, the child process above runs the public ops on CPU)."""
    pytest.importorskip("triton")
    import torch

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    u = torch.randn(1, 2, 5)
    with pytest.raises(RuntimeError, match=r"runs on \['cuda'\].*set TRITON_INTERPRET=1 before importing triton"):
        ops.selective_scan(u, torch.rand(1, 2, 5), -torch.rand(2, 1), torch.randn(1, 1, 5), torch.randn(1, 1, 5),
                           backend="triton")
    assert "triton" not in ops.available_backends("cpu")


def test_interpreter_switched_on_too_late_is_refused(monkeypatch):
    """Kernels already compiled for CUDA in this process cannot run on CPU: the message says to set the
    variable before importing triton."""
    pytest.importorskip("triton")
    import vision_ssm.ops.triton._fwd as kernels
    from vision_ssm.ops.scan.builtin import triton_interpreter_devices

    if type(kernels._scan_fwd_kernel).__name__ != "JITFunction":
        pytest.skip("this process runs the interpreter")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    devices, hint = triton_interpreter_devices()
    assert devices == () and "set it before importing triton" in hint

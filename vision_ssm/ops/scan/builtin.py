"""The built-in backends of :func:`vision_ssm.ops.selective_scan` (registered lazily)."""
from __future__ import annotations

import os
import sys

import torch

from .registry import BackendSpec, register_backend


def register_builtin_backends() -> None:
    """Register reference / chunked / numba / mamba_ssm / triton specs (nothing optional is imported)."""
    register_backend(
        BackendSpec(
            name="reference",
            target="vision_ssm.ops.scan.reference:selective_scan_reference",
            devices=("cpu", "cuda"),
            priority={"cpu": 0, "cuda": 0},
            pure_torch=True,
        )
    )
    register_backend(
        BackendSpec(
            name="chunked",
            target="vision_ssm.ops.chunked:selective_scan_chunked",
            devices=("cpu", "cuda"),
            priority={"cpu": 50, "cuda": 10},
            pure_torch=True,
        )
    )
    register_backend(
        BackendSpec(
            name="numba",
            target="vision_ssm.ops.numba:selective_scan_numba",
            devices=("cpu",),
            priority={"cpu": 100},
            probe=("numba",),
            install_hint='install numba: pip install "vision-ssm[cpu]"',
            ss2d_target="vision_ssm.ops.numba.ss2d:ss2d_scan_numba",
        )
    )
    register_backend(
        BackendSpec(
            name="mamba_ssm",
            target="vision_ssm.ops.mamba_ssm:selective_scan_mamba_ssm",
            devices=("cuda",),
            priority={"cuda": 50},
            install_hint=(
                'install mamba-ssm: MAMBA_KEEP_CUDA_BUILD=TRUE pip install "vision-ssm[cuda]" --no-build-isolation'
            ),
            reason_target="vision_ssm.ops.mamba_ssm.scan:probe",
            intent_module="mamba_ssm",
        )
    )
    register_backend(
        BackendSpec(
            name="triton",
            target="vision_ssm.ops.triton:selective_scan_triton",
            devices=("cuda",),
            priority={"cuda": 100},
            probe=("triton",),
            install_hint="install triton (it ships with the Linux CUDA wheels of torch): pip install triton",
            available_check=torch.cuda.is_available,
            ss2d_target="vision_ssm.ops.triton:ss2d_scan_triton",
            explicit_devices="vision_ssm.ops.scan.builtin:triton_interpreter_devices",
        )
    )


def triton_interpreter_devices() -> tuple[tuple[str, ...], str]:
    """CPU, for ``backend="triton"`` asked for by name while Triton's interpreter is on.

    ``TRITON_INTERPRET=1`` runs Triton kernels on CPU tensors (slowly: it is a debugging and testing
    tool), so the backend is never chosen automatically on CPU. The variable must be set before
    triton is imported: a process that imported triton without it cannot switch later.

    Returns:
        ``(("cpu",), "")`` when the interpreter is on, else ``((), hint)`` saying how to turn it on.
    """
    if os.environ.get("TRITON_INTERPRET") != "1":
        return (), "On CPU, triton runs only under its interpreter: set TRITON_INTERPRET=1 before importing triton."
    kernels = sys.modules.get("vision_ssm.ops.triton._fwd")
    if kernels is not None and type(getattr(kernels, "_scan_fwd_kernel", None)).__name__ == "JITFunction":
        return (), ("TRITON_INTERPRET=1 was set after the triton kernels were compiled for CUDA in this "
                    "process; set it before importing triton (e.g. in the shell).")
    return ("cpu",), ""

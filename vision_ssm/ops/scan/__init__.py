"""The selective-scan API: the one public entry, the backend registry and its typed contract.

- :mod:`.api`: :func:`selective_scan` (mamba-ssm's signature; validation, then dispatch).
- :mod:`.ss2d`: :func:`ss2d_scan` (route → K-direction scan → merge, or a backend's fused kernel).
- :mod:`.registry`: :class:`BackendSpec`, registration and selection (:func:`use_backend`).
- :mod:`.signature`: :class:`ScanFn` / :class:`SS2DScanFn`, the contract every backend implements.
- :mod:`.prologue`: the δ prologue and the element-wise epilogue, written once.
- :mod:`.reference`: the sequential loop, the oracle of every test.
- :mod:`.causal_conv1d`: :func:`causal_conv1d` (causal-conv1d's signature; its kernel on CUDA when installed).
- :mod:`.builtin`: the import paths of the built-in backends (nothing optional is imported).

This package imports :mod:`vision_ssm.ops.geometry` and nothing else of the library; backend
packages import it, never the other way round (the registry holds their import paths as strings).
"""
from .api import selective_scan
from .builtin import register_builtin_backends
from .causal_conv1d import causal_conv1d
from .prologue import compute_dtype, delta_prologue
from .reference import selective_scan_reference
from .registry import (
    ENV_VAR,
    BackendSpec,
    available_backends,
    get_backend_spec,
    register_backend,
    registered_backends,
    use_backend,
)
from .signature import ScanFn, SS2DScanFn
from .ss2d import ss2d_channels_last, ss2d_scan

__all__ = [
    "ENV_VAR",
    "BackendSpec",
    "SS2DScanFn",
    "ScanFn",
    "available_backends",
    "causal_conv1d",
    "compute_dtype",
    "delta_prologue",
    "get_backend_spec",
    "register_backend",
    "register_builtin_backends",
    "registered_backends",
    "selective_scan",
    "selective_scan_reference",
    "ss2d_channels_last",
    "ss2d_scan",
    "use_backend",
]

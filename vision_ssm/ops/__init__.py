"""Floor 1: pure tensor ops (no parameters).

Sub-packages (see ``docs/architecture.md``):

- :mod:`.scan`: :func:`selective_scan` (one entry, mamba-ssm's signature), :func:`ss2d_scan`, the
  backend registry and its typed contract, the reference loop, :func:`causal_conv1d`.
- :mod:`.geometry`: scan curves, scan orders, direction sets, route/merge.
- One package per backend: :mod:`.chunked`, :mod:`.numba`, :mod:`.triton`, :mod:`.mamba_ssm`
  (imported lazily, when selected).
"""
from .geometry import (
    FAMILIES,
    DirectionSet,
    DirectionSpec,
    Walk,
    canonical_family,
    gather_directions,
    get_directions,
    merge,
    resolve_directions,
    route,
    scan_directions,
    scan_order,
    scatter_directions,
    supported_directions,
)
from .scan import (
    ENV_VAR,
    BackendSpec,
    ScanFn,
    SS2DScanFn,
    available_backends,
    causal_conv1d,
    register_backend,
    register_builtin_backends,
    registered_backends,
    selective_scan,
    selective_scan_reference,
    ss2d_channels_last,
    ss2d_scan,
    use_backend,
)

register_builtin_backends()

__all__ = [
    "ENV_VAR",
    "FAMILIES",
    "BackendSpec",
    "DirectionSet",
    "DirectionSpec",
    "SS2DScanFn",
    "ScanFn",
    "Walk",
    "available_backends",
    "causal_conv1d",
    "canonical_family",
    "gather_directions",
    "get_directions",
    "merge",
    "register_backend",
    "registered_backends",
    "resolve_directions",
    "route",
    "scan_directions",
    "scan_order",
    "scatter_directions",
    "selective_scan",
    "selective_scan_reference",
    "ss2d_channels_last",
    "ss2d_scan",
    "supported_directions",
    "use_backend",
]

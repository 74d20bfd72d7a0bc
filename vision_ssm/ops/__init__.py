"""Floor 1: pure tensor ops (no parameters). Selective scan with backends, scan orders, route/merge."""
from ._registry import (
    ENV_VAR,
    BackendSpec,
    available_backends,
    register_backend,
    registered_backends,
    use_backend,
)
from .backends import register_builtin_backends
from .reference import selective_scan_reference
from .route import gather_directions, merge, route, scatter_directions
from .scan_orders import (
    FAMILIES,
    DirectionSet,
    DirectionSpec,
    canonical_family,
    get_directions,
    resolve_directions,
    scan_directions,
    scan_order,
    supported_directions,
)
from .selective_scan import selective_scan
from .ss2d_scan import ss2d_scan

register_builtin_backends()

__all__ = [
    "ENV_VAR",
    "DirectionSet",
    "DirectionSpec",
    "FAMILIES",
    "canonical_family",
    "resolve_directions",
    "supported_directions",
    "get_directions",
    "merge",
    "route",
    "scan_directions",
    "scan_order",
    "BackendSpec",
    "available_backends",
    "register_backend",
    "registered_backends",
    "selective_scan",
    "selective_scan_reference",
    "ss2d_scan",
    "gather_directions",
    "scatter_directions",
    "use_backend",
]

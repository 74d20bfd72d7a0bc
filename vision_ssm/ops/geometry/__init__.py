"""Scan geometry: curves, scan orders, direction sets and route/merge (pure index maths, no backends).

- :mod:`.curves`: the space-filling / raster curves of one H×W grid (sweep, snake, z-order, zigzag,
  Hilbert, diagonal snake).
- :mod:`.orders`: a scan *family* and its K directions (orientations and reversals) as ``(K, L)``
  visit orders, and the :class:`~.orders.Walk` describing each direction.
- :mod:`.directions`: :class:`~.directions.DirectionSet` (the cached, device-resident description
  every consumer reads) and :class:`~.directions.DirectionSpec` (the size-independent ``(family, K)``).
- :mod:`.route`: route a map into K sequences and merge them back (adjoint gathers/scatters).

Nothing here imports a selective-scan backend.
"""
from .directions import DirectionSet, DirectionSpec, get_directions, resolve_directions
from .orders import (
    FAMILIES,
    FAMILY_ALIASES,
    ORIENTATIONS,
    Walk,
    canonical_family,
    direction_walks,
    oriented_positions,
    scan_directions,
    scan_order,
    supported_directions,
)
from .route import gather_directions, merge, route, scatter_directions

__all__ = [
    "FAMILIES",
    "FAMILY_ALIASES",
    "ORIENTATIONS",
    "DirectionSet",
    "DirectionSpec",
    "Walk",
    "canonical_family",
    "direction_walks",
    "gather_directions",
    "get_directions",
    "merge",
    "oriented_positions",
    "resolve_directions",
    "route",
    "scan_directions",
    "scan_order",
    "scatter_directions",
    "supported_directions",
]

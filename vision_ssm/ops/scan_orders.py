"""Scan orders and direction sets: which pixel each of the K scans of a 2-D map reads at each step.

A *scan order* is a permutation of the ``L = H*W`` raster positions: ``order[t]`` is the raster index
``h*W + w`` read at step ``t``. A *direction set* stacks K such orders, ``index (K, L)``, together
with their inverses; :func:`vision_ssm.ops.route` / :func:`vision_ssm.ops.merge` move a map into and
out of the K scan sequences.

Direction composition (MambaAD ``SS2D.forward_core``; ``blocks.md`` §2.3): the base curve of the
family is applied to four orientations of the map, each generated on the oriented grid's own shape
(so non-square maps work):

===  ===========================  =============================================
k    orientation                  oriented pixel ``[i, j]`` is original pixel
===  ===========================  =============================================
o0   identity (H×W)               ``[i, j]``
o1   transpose (W×H)              ``[j, i]``
o2   ``rot90(k=1)`` (W×H)         ``[j, W-1-i]``
o3   ``rot90(k=1)`` transposed    ``[i, W-1-j]`` (a horizontal flip)
===  ===========================  =============================================

and the stacked directions are ``K=1: [o0]``, ``K=2: [o0, rev o0]``, ``K=4: [o0, o1, rev o0, rev o1]``,
``K=8: [o0, o1, o2, o3, rev o0, rev o1, rev o2, rev o3]`` (``rev`` = full sequence reversal).
``sweep`` with K=4 is VMamba's cross-scan (row-major, column-major, both reversed).

``quadsnake`` is MambaAlign's QuadSnake (``blocks.md`` §2.5) and does not use that composition:
its K=4 routes are ``[snake, rev snake, diagsnake, rev diagsnake]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from .scan_curves import CURVE_FAMILIES

__all__ = [
    "FAMILIES",
    "FAMILY_ALIASES",
    "DirectionSet",
    "DirectionSpec",
    "canonical_family",
    "get_directions",
    "oriented_positions",
    "resolve_directions",
    "scan_directions",
    "scan_order",
    "supported_directions",
]

#: Canonical family names.
FAMILIES: tuple[str, ...] = ("sweep", "snake", "zorder", "zigzag", "hilbert", "diagsnake", "quadsnake")
#: Accepted alternative names (MambaAD calls the snake ``scan``).
FAMILY_ALIASES: dict[str, str] = {"scan": "snake", "raster": "sweep", "boustrophedon": "snake", "morton": "zorder"}

_COMPOSED_K = (1, 2, 4, 8)
_QUADSNAKE_K = (1, 2, 4)
ORIENTATIONS: tuple[str, ...] = ("identity", "transpose", "rot90", "rot90_transpose")


def canonical_family(family: str) -> str:
    """Canonical name of a scan family (resolves aliases such as ``"scan"`` → ``"snake"``).

    Raises:
        ValueError: unknown family.
    """
    name = str(family).lower()
    name = FAMILY_ALIASES.get(name, name)
    if name not in FAMILIES:
        known = ", ".join(FAMILIES + tuple(FAMILY_ALIASES))
        raise ValueError(f"unknown scan family {family!r}; known: {known}")
    return name


def supported_directions(family: str) -> tuple[int, ...]:
    """The numbers of directions ``K`` a family can be stacked into."""
    return _QUADSNAKE_K if canonical_family(family) == "quadsnake" else _COMPOSED_K


def scan_order(family: str, H: int, W: int) -> Tensor:
    """Base scan order of a family on an H×W grid.

    Args:
        family: One of :data:`FAMILIES` or an alias (``"scan"`` = ``"snake"``).
        H: Grid height (``>= 1``).
        W: Grid width (``>= 1``).

    Returns:
        ``(H*W,)`` int64 CPU tensor; entry ``t`` is the raster index ``h*W + w`` visited at step
        ``t``. For ``quadsnake`` this is its route 0 (the row serpentine).
    """
    fam = canonical_family(family)
    if fam == "quadsnake":
        fam = "snake"
    return CURVE_FAMILIES[fam](int(H), int(W))


def oriented_positions(H: int, W: int, orientation: str) -> Tensor:
    """Original raster index of every pixel of an oriented view of an H×W map.

    Args:
        H: Height of the original map.
        W: Width of the original map.
        orientation: ``"identity"``, ``"transpose"``, ``"rot90"`` (``torch.rot90(k=1)`` over
            (H, W)) or ``"rot90_transpose"``.

    Returns:
        ``(H', W')`` int64 tensor (``(H, W)`` or ``(W, H)``) whose entry ``[i, j]`` is the raster
        index in the original map of the oriented map's pixel ``[i, j]``.
    """
    grid = torch.arange(H * W, dtype=torch.int64).view(H, W)
    if orientation == "identity":
        return grid
    if orientation == "transpose":
        return grid.t()
    if orientation == "rot90":
        return torch.rot90(grid, 1, (0, 1))
    if orientation == "rot90_transpose":
        return torch.rot90(grid, 1, (0, 1)).t()
    raise ValueError(f"unknown orientation {orientation!r}; known: {ORIENTATIONS}")


def _oriented_order(family: str, H: int, W: int, orientation: str) -> Tensor:
    pos = oriented_positions(H, W, orientation)
    return pos.reshape(-1)[scan_order(family, pos.shape[0], pos.shape[1])]


def scan_directions(family: str, H: int, W: int, num_directions: int) -> Tensor:
    """The K visit orders of a direction set, in MambaAD's direction order.

    Args:
        family: Scan family or alias.
        H: Grid height.
        W: Grid width.
        num_directions: K; 1, 2, 4 or 8 (``quadsnake``: 1, 2 or 4).

    Returns:
        ``(K, H*W)`` int64 CPU tensor; row ``k`` is the visit order of direction ``k`` (raster
        indices of the original map). ``sweep``/4 is VMamba's cross-scan.
    """
    fam = canonical_family(family)
    K = int(num_directions)
    if K not in supported_directions(fam):
        raise ValueError(f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {K}")
    H, W = int(H), int(W)
    if fam == "quadsnake":
        snake = scan_order("snake", H, W)
        diag = scan_order("diagsnake", H, W)
        routes = {1: [snake], 2: [snake, snake.flip(0)], 4: [snake, snake.flip(0), diag, diag.flip(0)]}[K]
        return torch.stack(routes)
    n_base = {1: 1, 2: 1, 4: 2, 8: 4}[K]
    base = [_oriented_order(fam, H, W, o) for o in ORIENTATIONS[:n_base]]
    if K == 1:
        return torch.stack(base)
    return torch.stack(base + [b.flip(0) for b in base])


@dataclass(frozen=True, eq=False)
class DirectionSet:
    """K scan directions over an H×W grid (an immutable value object; treat the tensors as read-only).

    Attributes:
        name: Readable name, ``"<family>-<K>"`` for built-in sets, e.g. ``"hilbert-8"``.
        family: Canonical scan family (``"custom"`` for sets built by :meth:`from_index`).
        H: Grid height.
        W: Grid width.
        index: ``(K, H*W)`` int64; ``index[k, t]`` is the raster position (``h*W + w``) visited
            at step ``t`` of direction ``k``.
        inverse: ``(K, H*W)`` int64; ``inverse[k, p]`` is the step at which direction ``k``
            visits raster position ``p`` (``inverse[k, index[k, t]] == t``).
    """

    name: str
    family: str
    H: int
    W: int
    index: Tensor = field(repr=False)
    inverse: Tensor = field(repr=False)

    @property
    def K(self) -> int:
        """Number of directions."""
        return self.index.shape[0]

    @property
    def L(self) -> int:
        """Sequence length ``H*W``."""
        return self.H * self.W

    @property
    def device(self) -> torch.device:
        """Device of the index tensors."""
        return self.index.device

    @property
    def spec(self) -> DirectionSpec:
        """The size-independent description ``(family, K)`` of this set."""
        return DirectionSpec(self.family, self.K)

    def to(self, device: torch.device | str | None) -> DirectionSet:
        """This set on ``device`` (cached for built-in families)."""
        dev = _device_key(device)
        if str(self.index.device) == dev:
            return self
        if self.family in FAMILIES:
            return _cached(self.family, self.H, self.W, self.K, dev)
        return DirectionSet(self.name, self.family, self.H, self.W, self.index.to(dev), self.inverse.to(dev))

    @classmethod
    def from_index(cls, index: Tensor, H: int, W: int, name: str = "custom") -> DirectionSet:
        """A custom direction set from explicit visit orders.

        Args:
            index: ``(K, H*W)`` (or ``(H*W,)`` for K=1) integer tensor; each row a permutation.
            H: Grid height.
            W: Grid width.
            name: Name of the set.

        Raises:
            ValueError: a row is not a permutation of ``0..H*W-1``.
        """
        index = torch.as_tensor(index, dtype=torch.int64)
        if index.dim() == 1:
            index = index[None]
        L = int(H) * int(W)
        if index.dim() != 2 or index.shape[1] != L:
            raise ValueError(f"index must be (K, {L}), got {tuple(index.shape)}")
        ref = torch.arange(L, device=index.device).expand_as(index)
        if not torch.equal(index.sort(dim=1).values, ref):
            raise ValueError("every row of index must be a permutation of 0..H*W-1")
        return cls(name, "custom", int(H), int(W), index.contiguous(), torch.argsort(index, dim=1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DirectionSet):
            return NotImplemented
        if self is other:
            return True
        if (self.family, self.H, self.W, self.K) != (other.family, other.H, other.W, other.K):
            return False
        if self.family in FAMILIES:  # built-in sets are determined by (family, H, W, K): no device sync
            return True
        return torch.equal(self.index.cpu(), other.index.cpu())

    def __hash__(self) -> int:
        return hash((self.name, self.family, self.H, self.W, self.K))

    def __repr__(self) -> str:
        return f"DirectionSet({self.name!r}, H={self.H}, W={self.W}, K={self.K}, device={self.device})"


@dataclass(frozen=True)
class DirectionSpec:
    """A size-independent direction set: a scan family and a number of directions.

    Blocks that accept any input size store one of these and call :meth:`at` per forward
    (the result is cached). ``DirectionSpec.parse("hilbert-8") == DirectionSpec("hilbert", 8)``.

    Attributes:
        family: Canonical scan family.
        num_directions: K.
    """

    family: str
    num_directions: int

    def __post_init__(self) -> None:
        if self.family == "custom":
            return
        fam = canonical_family(self.family)
        object.__setattr__(self, "family", fam)
        if int(self.num_directions) not in supported_directions(fam):
            raise ValueError(
                f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {self.num_directions}"
            )
        object.__setattr__(self, "num_directions", int(self.num_directions))

    @property
    def name(self) -> str:
        """``"<family>-<K>"``."""
        return f"{self.family}-{self.num_directions}"

    @classmethod
    def parse(cls, value: str | tuple[str, int] | DirectionSpec, num_directions: int | None = None) -> DirectionSpec:
        """Parse ``"hilbert"`` (with ``num_directions``), ``"hilbert-8"``, ``("hilbert", 8)`` or a spec."""
        if isinstance(value, DirectionSpec):
            return value
        if isinstance(value, tuple):
            return cls(value[0], value[1])
        text = str(value)
        fam, sep, k = text.rpartition("-")
        if sep and k.isdigit():
            return cls(fam, int(k))
        if num_directions is None:
            num_directions = 4 if canonical_family(text) == "quadsnake" else 1
        return cls(text, num_directions)

    def at(self, H: int, W: int, device: torch.device | str | None = None) -> DirectionSet:
        """The cached :class:`DirectionSet` for an H×W grid on ``device``."""
        return get_directions(self.family, H, W, self.num_directions, device)


def _device_key(device: torch.device | str | None) -> str:
    if device is None:
        return "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


@lru_cache(maxsize=512)
def _cached(family: str, H: int, W: int, K: int, device: str) -> DirectionSet:
    # Cached tensors outlive the call: never let them become inference tensors (a set first built
    # under torch.inference_mode() would otherwise break every later autograd use), nor fake
    # tensors (a set first built while torch.export traces with fake tensors would poison every
    # later eager call): build them with every tracing/dispatch mode switched off. (Dynamo does
    # not come here: get_directions calls _build directly while it traces.)
    with torch.inference_mode(False), _disable_current_modes():
        return _build(family, H, W, K, device)


def _build(family: str, H: int, W: int, K: int, device: str) -> DirectionSet:
    if device == "cpu":
        idx = scan_directions(family, H, W, K).contiguous()
        inv = torch.argsort(idx, dim=1)
        return DirectionSet(f"{family}-{K}", family, H, W, idx, inv)
    cpu = _build(family, H, W, K, "cpu") if torch.compiler.is_dynamo_compiling() else _cached(family, H, W, K, "cpu")
    return DirectionSet(cpu.name, family, H, W, cpu.index.to(device), cpu.inverse.to(device))


def get_directions(
    family: str, H: int, W: int, num_directions: int, device: torch.device | str | None = None
) -> DirectionSet:
    """Cached :class:`DirectionSet` (one per family, H, W, K and device).

    Args:
        family: Scan family or alias.
        H: Grid height.
        W: Grid width.
        num_directions: K (see :func:`scan_directions`).
        device: Device of the index tensors (default CPU).

    Returns:
        The direction set; repeated calls with equal arguments return the same object.
    """
    fam = canonical_family(family)
    K = int(num_directions)
    if K not in supported_directions(fam):
        raise ValueError(f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {K}")
    if int(H) < 1 or int(W) < 1:
        raise ValueError(f"grid size must be positive, got H={H}, W={W}")
    if torch.compiler.is_dynamo_compiling():  # traced, never cached: skip the lru_cache wrapper
        return _build(fam, int(H), int(W), K, _device_key(device))
    return _cached(fam, int(H), int(W), K, _device_key(device))


def resolve_directions(
    scan: str | tuple[str, int] | DirectionSpec | DirectionSet,
    H: int,
    W: int,
    num_directions: int | None = None,
    device: torch.device | str | None = None,
) -> DirectionSet:
    """Turn whatever a block was configured with into the :class:`DirectionSet` for an H×W map.

    Args:
        scan: A family name (``"hilbert"``, with ``num_directions``), a ``"family-K"`` string,
            a ``(family, K)`` tuple, a :class:`DirectionSpec` or a :class:`DirectionSet`.
        H: Height of the map.
        W: Width of the map.
        num_directions: K when ``scan`` is a bare family name.
        device: Device of the index tensors.

    Raises:
        ValueError: ``scan`` is a :class:`DirectionSet` for another grid size, or its K differs
            from ``num_directions``.
    """
    if isinstance(scan, DirectionSet):
        if (scan.H, scan.W) != (int(H), int(W)):
            raise ValueError(f"direction set {scan.name!r} is for {scan.H}x{scan.W}, the map is {H}x{W}")
        if num_directions is not None and scan.K != num_directions:
            raise ValueError(f"direction set {scan.name!r} has K={scan.K}, expected {num_directions}")
        return scan.to(device) if device is not None else scan
    spec = DirectionSpec.parse(scan, num_directions)
    if num_directions is not None and spec.num_directions != num_directions:
        raise ValueError(f"scan {spec.name!r} has K={spec.num_directions}, expected {num_directions}")
    return spec.at(H, W, device)

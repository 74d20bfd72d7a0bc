"""Direction sets: the K scan orders of a block over one H×W grid, described once, used end to end.

A :class:`DirectionSet` is what every 2-D scan consumer reads: the route/merge ops read its
``index``/``inverse``, fused kernels read its cached int32 index (:meth:`DirectionSet.index_as`)
and, for built-in families, the semantic :class:`~vision_ssm.ops.geometry.orders.Walk` of each
direction (curve, orientation, reversal) instead of re-deriving them from the index.
:class:`DirectionSpec` is the size-independent ``(family, K)`` a block stores; blocks call
:func:`resolve_directions` once per forward with whatever they were configured with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from ._checks import check_grid, check_num_directions
from .orders import (
    FAMILIES,
    Walk,
    canonical_family,
    direction_walks,
    scan_directions,
    supported_directions,
    walk_order,
)

__all__ = ["DirectionSet", "DirectionSpec", "get_directions", "resolve_directions"]


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
        walks: For built-in families, how each direction walks the grid (``None`` for custom sets).
    """

    name: str
    family: str
    H: int
    W: int
    index: Tensor = field(repr=False)
    inverse: Tensor = field(repr=False)
    walks: tuple[Walk, ...] | None = field(default=None, repr=False)
    _as: dict = field(default_factory=dict, repr=False, compare=False)

    def index_as(self, device: torch.device | str, dtype: torch.dtype = torch.int32) -> Tensor:
        """``index`` on ``device`` as ``dtype`` (kernels use int32), built once per set, device and dtype.

        The cached tensor is an ordinary tensor even when first asked for under
        ``torch.inference_mode()``.
        """
        key = (str(torch.device(device)), dtype)
        t = self._as.get(key)
        if t is None:
            with torch.inference_mode(False):
                t = self.index.to(device=device, dtype=dtype).clone()
            self._as[key] = t
        return t

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
        idx, inv = self.index.to(dev), self.inverse.to(dev)
        return DirectionSet(self.name, self.family, self.H, self.W, idx, inv, self.walks)

    @classmethod
    def from_index(
        cls, index: Tensor, H: int, W: int, name: str = "custom", walks: tuple[Walk, ...] | None = None
    ) -> DirectionSet:
        """A custom direction set from explicit visit orders.

        Args:
            index: ``(K, H*W)`` (or ``(H*W,)`` for K=1) integer tensor; each row a permutation.
            H: Grid height.
            W: Grid width.
            name: Name of the set.
            walks: Optional :class:`Walk` of every row (then kernels may use it); checked against ``index``.

        Raises:
            ValueError: a row is not a permutation of ``0..H*W-1``, or ``walks`` does not describe ``index``.
        """
        H, W = check_grid(H, W, "DirectionSet.from_index")
        index = torch.as_tensor(index, dtype=torch.int64)
        if index.dim() == 1:
            index = index[None]
        L = H * W
        if index.dim() != 2 or index.shape[1] != L:
            raise ValueError(f"index must be (K, {L}), got {tuple(index.shape)}")
        ref = torch.arange(L, device=index.device).expand_as(index)
        if not torch.equal(index.sort(dim=1).values, ref):
            raise ValueError("every row of index must be a permutation of 0..H*W-1")
        if walks is not None:
            walks = tuple(Walk(*w) for w in walks)
            if len(walks) != index.shape[0] or any(
                not torch.equal(walk_order(w, H, W).to(index.device), row) for w, row in zip(walks, index)
            ):
                raise ValueError("walks do not describe the rows of index")
        return cls(name, "custom", H, W, index.contiguous(), torch.argsort(index, dim=1), walks)

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
        K = check_num_directions(self.num_directions, "DirectionSpec")
        if self.family == "custom":  # the spec of a DirectionSet.from_index set: describes it, builds nothing
            object.__setattr__(self, "num_directions", K)
            return
        fam = canonical_family(self.family)
        object.__setattr__(self, "family", fam)
        if K not in supported_directions(fam):
            raise ValueError(f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {K}")
        object.__setattr__(self, "num_directions", K)

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
            if len(value) != 2:
                raise ValueError(f"scan as a tuple must be (family, K), e.g. ('hilbert', 8), got {value!r}")
            return cls(value[0], value[1])
        if not isinstance(value, str):
            raise TypeError(f"scan must be a family name ('hilbert'), a 'family-K' string ('hilbert-8'), a "
                            f"(family, K) tuple, a DirectionSpec or a DirectionSet, got {value!r} "
                            f"({type(value).__name__})")
        text = value
        fam, sep, k = text.rpartition("-")
        if sep and k.isdigit():
            return cls(fam, int(k))
        if num_directions is None:
            num_directions = 4 if canonical_family(text) == "quadsnake" else 1
        return cls(text, num_directions)

    def at(self, H: int, W: int, device: torch.device | str | None = None) -> DirectionSet:
        """The cached :class:`DirectionSet` for an H×W grid on ``device``."""
        if self.family == "custom":
            raise ValueError("DirectionSpec('custom', ...) has no scan order to build; pass the DirectionSet of "
                             "the custom order (DirectionSet.from_index) instead")
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
        return DirectionSet(f"{family}-{K}", family, H, W, idx, inv, direction_walks(family, K))
    cpu = _build(family, H, W, K, "cpu") if torch.compiler.is_dynamo_compiling() else _cached(family, H, W, K, "cpu")
    return DirectionSet(cpu.name, family, H, W, cpu.index.to(device), cpu.inverse.to(device), cpu.walks)


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
    K = check_num_directions(num_directions, "get_directions")
    if K not in supported_directions(fam):
        raise ValueError(f"scan family {fam!r} supports num_directions in {supported_directions(fam)}, got {K}")
    H, W = check_grid(H, W, "get_directions")
    if torch.compiler.is_dynamo_compiling():  # traced, never cached: skip the lru_cache wrapper
        return _build(fam, H, W, K, _device_key(device))
    return _cached(fam, H, W, K, _device_key(device))


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

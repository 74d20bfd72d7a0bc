"""Backend registry and selection for :func:`vision_ssm.ops.selective_scan`.

A backend is a :class:`~vision_ssm.ops.scan.signature.ScanFn` (and optionally a fused
:class:`~vision_ssm.ops.scan.signature.SS2DScanFn`) that receives already-validated tensors.
Backends register lazily: the registry stores import paths, so optional packages (triton, numba,
mamba-ssm's ``selective_scan_cuda``) are only imported when a backend is resolved.

Selection order (code beats environment, as in timm): the ``backend=`` argument, then the
innermost :func:`use_backend` context, then the ``VISION_SSM_BACKEND`` environment variable, then
the automatic policy (which, in export mode, considers only pure-PyTorch backends; see
:func:`export_mode`).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

ENV_VAR = "VISION_SSM_BACKEND"
_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vision_ssm_backend", default=None
)


@dataclass
class BackendSpec:
    """Description of one selective-scan backend.

    Attributes:
        name: Public name (``"reference"``, ``"chunked"``, ...).
        target: ``"module:function"`` import path of the scan function.
        devices: Device types the backend runs on (``"cpu"``, ``"cuda"``).
        priority: Higher wins in the automatic policy, per device type.
        probe: Import names that must be importable for the backend to be available.
        install_hint: What to install when it is not available.
        available_check: Optional extra check (e.g. "a CUDA device exists").
        reason_target: Optional ``"module:function"`` of a probe returning why the backend cannot run
            here (a message for the user) or ``None``; run once, after ``probe`` and ``available_check``.
        intent_module: A module whose presence shows the user meant to use this backend (e.g.
            ``mamba_ssm``); when it is installed but the backend is unavailable, the automatic policy
            warns once, with the reason, before falling back.
        ss2d_target: Optional ``"module:function"`` of a fused :func:`vision_ssm.ops.ss2d_scan`
            implementation with the same signature (minus ``backend``); used instead of the
            generic route → scan → merge path when this backend is selected.
        pure_torch: Made of PyTorch operators only, so an exported graph carries the scan itself;
            the automatic policy uses only such backends in export mode.
        explicit_devices: Optional ``"module:function"`` returning further device types the backend
            runs on *only when asked for by name* (e.g. Triton's CPU interpreter under
            ``TRITON_INTERPRET=1``), or a message saying how to enable them; never used by the
            automatic policy or :func:`available_backends`.
    """

    name: str
    target: str
    devices: tuple[str, ...]
    priority: dict[str, int] = field(default_factory=dict)
    probe: tuple[str, ...] = ()
    install_hint: str = ""
    available_check: Callable[[], bool] | None = None
    reason_target: str | None = None
    intent_module: str | None = None
    ss2d_target: str | None = None
    pure_torch: bool = False
    explicit_devices: str | None = None
    _fn: Callable | None = field(default=None, repr=False)
    _ss2d_fn: Callable | None = field(default=None, repr=False)
    _available: bool | None = field(default=None, repr=False)
    _reason: str | None = field(default=None, repr=False)

    def is_available(self) -> bool:
        """Whether the backend can run here (probed once; :attr:`unavailable_reason` says why not)."""
        if self._available is None:
            self._reason = self._probe()
            self._available = self._reason is None
        return self._available

    @property
    def unavailable_reason(self) -> str | None:
        """Why :meth:`is_available` is ``False`` (``None`` when available)."""
        if self.is_available():
            return None
        return self._reason or self.install_hint or "not available"

    def _probe(self) -> str | None:
        for mod in self.probe:
            try:
                importlib.import_module(mod)
            except Exception as e:  # ImportError, or a broken binary extension (OSError, RuntimeError)
                return f"cannot import {mod} ({type(e).__name__}: {e}); {self.install_hint}"
        if self.available_check is not None:
            try:
                ok = bool(self.available_check())
            except Exception as e:
                return f"availability check failed ({type(e).__name__}: {e})"
            if not ok:
                return f"no usable {'/'.join(self.devices)} device here"
        if self.reason_target is not None:
            module, func = self.reason_target.split(":")
            try:
                return getattr(importlib.import_module(module), func)()
            except Exception as e:
                return f"probe failed ({type(e).__name__}: {e}); {self.install_hint}"
        return None

    def import_problem(self) -> str | None:
        """Why the backend's packages cannot be imported (``None`` when they can); no device check."""
        for mod in self.probe:
            try:
                importlib.import_module(mod)
            except Exception as e:
                return f"cannot import {mod} ({type(e).__name__}: {e}); {self.install_hint}"
        return None

    def explicit_device_types(self) -> tuple[tuple[str, ...], str]:
        """``(device types, hint)`` usable when the backend is asked for by name (see ``explicit_devices``)."""
        if self.explicit_devices is None:
            return (), ""
        module, func = self.explicit_devices.split(":")
        return getattr(importlib.import_module(module), func)()

    def load(self) -> Callable:
        if self._fn is None:
            module, func = self.target.split(":")
            self._fn = getattr(importlib.import_module(module), func)
        return self._fn

    def load_ss2d(self) -> Callable | None:
        if self.ss2d_target is None:
            return None
        if self._ss2d_fn is None:
            module, func = self.ss2d_target.split(":")
            self._ss2d_fn = getattr(importlib.import_module(module), func)
        return self._ss2d_fn


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Register (or replace) a backend."""
    _BACKENDS[spec.name] = spec


def registered_backends() -> list[str]:
    """Names of every registered backend, available or not."""
    return list(_BACKENDS)


def available_backends(device: str | torch.device | None = None) -> list[str]:
    """Names of the backends that can run here, best first.

    Args:
        device: If given, only backends that run on this device type (``"cpu"``, ``"cuda"``).
    """
    dev = None if device is None else torch.device(device).type
    specs = [s for s in _BACKENDS.values() if (dev is None or dev in s.devices) and s.is_available()]
    key_dev = dev or ("cuda" if torch.cuda.is_available() else "cpu")
    specs.sort(key=lambda s: -s.priority.get(key_dev, -1))
    return [s.name for s in specs]


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Context manager selecting the selective-scan backend for the code inside it.

    It overrides ``VISION_SSM_BACKEND`` (code beats environment); an explicit ``backend=`` argument
    (of an op, or of a block/model) still takes precedence over it. ``use_backend(None)`` restores
    the environment/automatic choice inside the block.

    Example:
        >>> import torch
        >>> from vision_ssm.layers import SS2D
        >>> from vision_ssm.ops import use_backend
        >>> block, x = SS2D(16, d_state=4), torch.randn(1, 6, 6, 16)     # x: (B, H, W, C)
        >>> with use_backend("reference"):                               # every scan inside: the reference loop
        ...     y = block(x)
        >>> tuple(y.shape)
        (1, 6, 6, 16)
    """
    if name is not None:
        get_backend_spec(name)  # fail early on unknown names
    token = _context_backend.set(name)
    try:
        yield
    finally:
        _context_backend.reset(token)


def get_backend_spec(name: str) -> BackendSpec:
    """Return the spec of ``name`` or raise a ``ValueError`` listing the known names."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown selective-scan backend {name!r}; known backends: {sorted(_BACKENDS)}"
        ) from None


def requested_backend(explicit: str | None = None) -> str | None:
    """The backend asked for by argument, context or environment, in that order (``None``: automatic)."""
    if explicit is not None:
        return explicit
    ctx = _context_backend.get()
    if ctx is not None:
        return ctx
    return os.environ.get(ENV_VAR) or None


def export_mode() -> bool:
    """Whether the automatic policy must pick a pure-PyTorch backend: while ``torch.export`` traces
    (``torch.onnx.export`` with ``dynamo=True`` included) or ``torch.jit.trace`` records, or when
    timm's ``set_exportable(True)`` is on. The exported graph then holds the scan as ordinary
    operators, with no dependency on numba, Triton, mamba-ssm or this library. An explicitly requested
    backend is still honoured."""
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        return True
    try:
        from timm.layers import is_exportable
    except ImportError:  # timm is a core dependency; be lenient anyway
        return False
    return bool(is_exportable())


def resolve_backend_name(device: torch.device, explicit: str | None = None) -> str:
    """Name of the backend :func:`resolve_backend` would pick."""
    return resolve_backend(device, explicit)[0]


def resolve_backend(device: torch.device, explicit: str | None = None) -> tuple[str, Callable]:
    """Pick the backend for tensors on ``device``.

    Raises:
        ValueError: Unknown backend name.
        RuntimeError: The requested backend is not installed or cannot run on ``device``.
    """
    name = requested_backend(explicit)
    dev = device.type
    if name is not None and name != "auto":
        spec = get_backend_spec(name)
        extra, hint = spec.explicit_device_types() if dev not in spec.devices else ((), "")
        if dev in extra:  # e.g. Triton's interpreter on CPU: only the packages need to import
            problem = spec.import_problem()
            if problem is not None:
                raise RuntimeError(f"selective-scan backend {name!r} is not available: {problem}")
            return name, spec.load()
        if dev not in spec.devices:
            raise RuntimeError(
                f"selective-scan backend {name!r} runs on {list(spec.devices)}, "
                f"but the inputs are on {dev!r}. Use another backend, e.g. one of "
                f"{available_backends(dev)}." + (f" {hint}" if hint else "")
            )
        if not spec.is_available():
            raise RuntimeError(f"selective-scan backend {name!r} is not available: {spec.unavailable_reason}")
        if torch.jit.is_tracing() and not spec.pure_torch:
            raise RuntimeError(
                f"torch.jit.trace records PyTorch operators only, and selective-scan backend {name!r} runs "
                f"outside them. Trace with a pure-PyTorch backend (use_backend('chunked'), or no backend choice: "
                f"the automatic policy then picks one), or use torch.export.export / "
                f"torch.onnx.export(..., dynamo=True), which keep {name!r} as a custom op where it has one."
            )
        return name, spec.load()
    names = available_backends(dev)
    _warn_skipped(dev, names[0] if names else None)
    if export_mode():
        names = [n for n in names if _BACKENDS[n].pure_torch]
    if not names:
        raise RuntimeError(f"no selective-scan backend runs on device type {dev!r}")
    return names[0], _BACKENDS[names[0]].load()


_WARNED: set[str] = set()


def _warn_skipped(dev: str, chosen: str | None) -> None:
    """Warn once per backend that outranks ``chosen`` and whose package is installed but unusable."""
    best = _BACKENDS[chosen].priority.get(dev, -1) if chosen else -1
    for spec in _BACKENDS.values():
        if spec.intent_module is None or spec.name in _WARNED or dev not in spec.devices:
            continue
        if spec.priority.get(dev, -1) <= best or spec.is_available():
            continue
        if importlib.util.find_spec(spec.intent_module) is None:
            continue
        _WARNED.add(spec.name)
        warnings.warn(
            f"selective-scan backend {spec.name!r} is installed but cannot run: {spec.unavailable_reason}. "
            f"Falling back to {chosen!r}.",
            RuntimeWarning,
            stacklevel=3,
        )


@torch.compiler.assume_constant_result
def _resolve_while_compiling(device_type: str, explicit: str | None) -> str:
    """:func:`resolve_backend_name`, run by Dynamo as plain Python (its imports and probes cannot be
    traced) and baked into the graph as a constant; loads the backend's functions for the traced code."""
    name = resolve_backend_name(torch.device(device_type), explicit)
    _BACKENDS[name].load()
    _BACKENDS[name].load_ss2d()
    return name


def backend_for_call(device: torch.device, explicit: str | None = None) -> BackendSpec:
    """The (loaded) spec of the backend a call on ``device`` uses.

    Under ``torch.compile`` / ``torch.export`` the choice is made once, when the graph is traced,
    and stays fixed for that compiled graph (a later :func:`use_backend` or environment change does
    not re-trace it).
    """
    if torch.compiler.is_compiling():
        return _BACKENDS[_resolve_while_compiling(device.type, explicit)]
    name, _ = resolve_backend(device, explicit)
    return _BACKENDS[name]

"""The official VMamba and MambaVision code, loaded from a checkout the user fetched, for side-by-side timing.

Nothing of that code lives in this repository: point the GPU suites at your own clones::

    git clone https://github.com/MzeroMiko/VMamba       /path/VMamba
    git clone https://github.com/NVlabs/MambaVision     /path/MambaVision
    python -m benchmarks.gpu_models --official-vmamba /path/VMamba --official-mambavision /path/MambaVision
    python -m benchmarks.gpu_scan --only ss2d --official-vmamba /path/VMamba

Both official models run their selective scan on mamba-ssm's compiled ``selective_scan_cuda`` (VMamba uses
its own ``selective_scan_cuda_oflex`` first when that extension is built; the row says which one ran).
VMamba's module imports ``fvcore`` for FLOP counting only; when it is not installed an empty stand-in is
registered so that the model module imports.

The loaders import the checkout's model folder as a private package (``_official_vmamba``,
``_official_mambavision``) without running its ``__init__`` (which pulls in training-only dependencies),
so their relative imports resolve inside the checkout.
"""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

# our model name -> (which checkout, the official constructor)
PAIRS: dict[str, tuple[str, str]] = {
    "vmamba_tiny_s1l8": ("vmamba", "vmamba_tiny_s1l8"),
    "vmamba_small_s1l20": ("vmamba", "vmamba_small_s1l20"),
    "vmamba_base_s1l20": ("vmamba", "vmamba_base_s1l20"),
    "mambavision_tiny": ("mambavision", "mamba_vision_T"),
    "mambavision_tiny2": ("mambavision", "mamba_vision_T2"),
    "mambavision_small": ("mambavision", "mamba_vision_S"),
    "mambavision_base": ("mambavision", "mamba_vision_B"),
}

_FOLDERS = {"vmamba": ("classification", "models", "vmamba.py"), "mambavision": ("mambavision", "models",
                                                                                  "mamba_vision.py")}


def _as_package(name: str, folder: Path) -> None:
    """Register ``folder`` as package ``name`` (its ``__init__`` is not executed); a package of that name
    from another folder is dropped with its submodules first."""
    old = sys.modules.get(name)
    if old is not None and list(getattr(old, "__path__", [])) != [str(folder)]:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(folder)]
        sys.modules[name] = pkg


def _stand_in_fvcore() -> None:
    try:
        import fvcore.nn  # noqa: F401
    except ImportError:
        fv, fv_nn = types.ModuleType("fvcore"), types.ModuleType("fvcore.nn")
        for attr in ("FlopCountAnalysis", "flop_count_str", "flop_count", "parameter_count"):
            setattr(fv_nn, attr, None)
        fv.nn = fv_nn
        sys.modules.setdefault("fvcore", fv)
        sys.modules.setdefault("fvcore.nn", fv_nn)


def load_module(kind: str, root: str | Path) -> ModuleType:
    """The official model module of ``kind`` (``"vmamba"`` or ``"mambavision"``) from the checkout ``root``.

    Raises:
        FileNotFoundError: ``root`` is not such a checkout.
    """
    *parts, fname = _FOLDERS[kind]
    folder = Path(root).expanduser().joinpath(*parts)
    if not (folder / fname).is_file():
        raise FileNotFoundError(f"{folder / fname} not found: --official-{kind} must be a clone of the official "
                                f"{'MzeroMiko/VMamba' if kind == 'vmamba' else 'NVlabs/MambaVision'} repository")
    if kind == "vmamba":
        _stand_in_fvcore()
    pkg = f"_official_{kind}"
    _as_package(pkg, folder)
    return importlib.import_module(f"{pkg}.{fname[:-3]}")


def vmamba_scan_backend(module: ModuleType) -> str:
    """Which compiled scan the official VMamba module will call (its own order of preference)."""
    csms6s = sys.modules.get(module.__name__.rsplit(".", 1)[0] + ".csms6s")
    for flag, name in (("WITH_SELECTIVESCAN_OFLEX", "oflex"), ("WITH_SELECTIVESCAN_CORE", "core"),
                       ("WITH_SELECTIVESCAN_MAMBA", "mamba-ssm")):
        if csms6s is not None and getattr(csms6s, flag, False):
            return name
    return "torch (no compiled scan found)"


def official_builder(name: str, roots: dict[str, str | None]) -> tuple[Callable[[], torch.nn.Module], str] | None:
    """``(constructor, label)`` of the official counterpart of our model ``name``, or ``None`` when there is no
    counterpart or its checkout was not given. ``roots``: ``{"vmamba": path or None, "mambavision": ...}``."""
    if name not in PAIRS or not roots.get(PAIRS[name][0]):
        return None
    kind, fn_name = PAIRS[name]
    module = load_module(kind, roots[kind])
    fn = getattr(module, fn_name)
    label = f"official {fn_name}" + (f" [{vmamba_scan_backend(module)}]" if kind == "vmamba" else " [mamba-ssm]")
    return (lambda: fn()), label


def official_route(root: str | Path) -> tuple[Callable, Callable]:
    """VMamba's own cross-scan and cross-merge (``cross_scan_fn``, ``cross_merge_fn``: Triton kernels on CUDA).

    ``cross_scan_fn(x)`` maps ``(B, C, H, W)`` to the four routed copies ``(B, 4, C, H*W)``;
    ``cross_merge_fn(y)`` maps ``(B, 4, C, H, W)`` back to ``(B, C, H*W)``.
    """
    load_module("vmamba", root)
    csm = importlib.import_module("_official_vmamba.csm_triton")
    return csm.cross_scan_fn, csm.cross_merge_fn

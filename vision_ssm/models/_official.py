"""Loading official (upstream) checkpoint files without running their pickles.

Official training checkpoints are ``torch.save`` pickles. Besides tensors they may pickle arbitrary
objects, e.g. VMamba saves its yacs ``CfgNode`` config under ``"config"``. Unpickling such an object
normally imports and runs code named by the file, which is why ``torch.load(weights_only=True)``
(and timm, which uses it) refuses them.

:func:`load_official` never unpickles arbitrary code by default:

1. ``.safetensors`` files are read with safetensors (no pickle at all).
2. Otherwise ``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors, containers,
   primitive types).
3. If that refuses the file because of unknown classes, the file is read again by an unpickler that
   resolves names only from torch's ``weights_only`` allowlist and maps every other class (e.g.
   ``yacs.config.CfgNode``) to an inert placeholder that only records what it is given. No code
   from the file's classes is imported or run; the placeholders are dropped and only tensors are
   returned.
4. ``unsafe=True`` is the explicit opt-in to plain ``torch.load(weights_only=False)`` (full pickle:
   the file can execute arbitrary code). Never use it on files you do not trust.
"""
from __future__ import annotations

import os
import pickle
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ._checkpoint import clean_checkpoint

__all__ = [
    "NotACheckpointError", "check_checkpoint_file", "convert_official", "load_official", "save_safetensors",
    "unwrap_state_dict",
]


class NotACheckpointError(ValueError):
    """The file is not a checkpoint at all (corrupt, truncated or another format), as opposed to a checkpoint
    that needs full unpickling. Unpickling would not help: the message says so and never advises it."""


def _not_a_checkpoint(path: str, what: str) -> NotACheckpointError:
    return NotACheckpointError(
        f"{path} is not a checkpoint: {what}. It may be truncated or corrupt, or another kind of file (an HTML "
        "error page saved by a failed download?); download or save it again. Expected a torch.save file "
        "(.pth/.pt/.bin) or a .safetensors file."
    )


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Check that ``path`` exists and looks like a torch.save file (zip archive or pickle) or safetensors.

    Only the first bytes are read; nothing is unpickled.

    Raises:
        FileNotFoundError: no such file.
        NotACheckpointError: the file is not in any checkpoint format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(9)
    if path.endswith(".safetensors"):
        if len(head) < 9 or head[8:9] != b"{":
            raise _not_a_checkpoint(path, f"it has no safetensors header (first bytes {head!r})")
        return
    if zipfile.is_zipfile(path):
        return
    if head[:2] == b"PK":
        raise _not_a_checkpoint(path, "it is a damaged or truncated zip archive (the torch.save format)")
    if head[:1] != b"\x80":  # every pickle of protocol >= 2 (legacy torch.save) starts with PROTO
        raise _not_a_checkpoint(path, f"it is neither a zip archive (torch.save) nor a pickle (first bytes {head!r})")

class _Opaque(dict):
    """Inert stand-in for a pickled object whose class is not on torch's allowlist (e.g. a yacs ``CfgNode``).

    It records what pickle hands it (constructor args, items, state) and runs nothing else.
    """

    _fqn = "?"

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.__dict__["_opaque_args"] = args

    def __setstate__(self, state):
        self.__dict__["_opaque_state"] = state

    def append(self, item):
        self.setdefault("_items", []).append(item)

    def extend(self, items):
        self.setdefault("_items", []).extend(items)

    def __repr__(self) -> str:
        return f"<placeholder for {self._fqn}>"


def _allowed_globals() -> dict[str, Any]:
    """torch's own ``weights_only`` allowlist (tensor rebuild functions, dtypes, containers...)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return dict(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover  (very old or future torch)
        return {
            "collections.OrderedDict": OrderedDict,
            "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
            "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
            "torch.Size": torch.Size,
        }


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` returns torch-allowlisted objects, and an inert :class:`_Opaque` subclass for anything else.

    ``find_class`` is pickle's only way to reach code named by the file, so nothing outside torch's
    allowlist is imported or run.
    """

    def find_class(self, module: str, name: str):
        fqn = f"{module}.{name}"
        obj = _allowed_globals().get(fqn)
        if obj is not None:
            return obj
        return type(f"Opaque[{fqn}]", (_Opaque,), {"_fqn": fqn})


_restricted_pickle = types.ModuleType("vision_ssm_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()


def _torch_load_with_placeholders(path: str | os.PathLike) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)


def unwrap_state_dict(checkpoint: Mapping[str, Any], key: str | None = None, use_ema: bool = False) -> dict:
    """Return the tensor mapping inside a training checkpoint (:func:`~vision_ssm.models._checkpoint.clean_checkpoint`).

    Args:
        checkpoint: The loaded object.
        key: Take ``checkpoint[key]``; by default the first of ``state_dict_ema``/``model_ema`` (only with
            ``use_ema``), then ``state_dict``, ``model``, ``net``, ``module``, else the mapping itself.
        use_ema: Prefer the EMA weights when the file has them (VMamba's releases are used with ``model``).

    Returns:
        ``{name: tensor}`` with DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes stripped.

    Raises:
        KeyError: ``key`` is not in the checkpoint.
        ValueError: The selected mapping holds non-tensor values.
    """
    return clean_checkpoint(checkpoint, key=key, use_ema=use_ema)


def load_official(path: str | os.PathLike, *, key: str | None = None, use_ema: bool = False,
                  unsafe: bool = False) -> dict[str, Tensor]:
    """Read an official checkpoint file into a plain ``{name: tensor}`` state dict, safely.

    See the module docstring for what is and is not executed. The returned keys are the file's own
    (use a model's ``checkpoint_filter_fn`` to map old upstream names).

    Args:
        path: ``.pth``/``.pt``/``.bin`` (torch pickle) or ``.safetensors``.
        key: Sub-dict holding the weights (default: ``state_dict``, ``model``, ... see :func:`unwrap_state_dict`).
        use_ema: Prefer ``model_ema``/``state_dict_ema`` when present.
        unsafe: Allow full unpickling (``weights_only=False``), which can run arbitrary code from the
            file. Only for files you trust, and only if the safe paths fail.

    Returns:
        The state dict (CPU tensors).

    Raises:
        FileNotFoundError: No such file.
        NotACheckpointError: The file is not a checkpoint (corrupt, truncated, another format).
        pickle.UnpicklingError: The file is a checkpoint that cannot be read without executing its pickle (and
            ``unsafe`` is False).
    """
    path = os.fspath(path)
    check_checkpoint_file(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return unwrap_state_dict(load_file(path), key, use_ema)
    if unsafe:
        warnings.warn(f"load_official(unsafe=True): fully unpickling {path}; this can execute code from the file",
                      stacklevel=2)
        return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=False), key, use_ema)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as first:
        if "Unsupported global" not in str(first) and "GLOBAL" not in str(first):
            # refused for another reason than the classes it names: the pickle itself is broken
            raise _not_a_checkpoint(path, f"its pickle cannot be read ({_first_line(first)})") from first
        try:
            ckpt = _torch_load_with_placeholders(path)
        except pickle.UnpicklingError as second:
            raise pickle.UnpicklingError(
                f"{path} cannot be read without executing its pickle ({second}). If you trust the file, "
                "pass unsafe=True (CLI: --unsafe-pickle)."
            ) from first
    except (RuntimeError, EOFError, ValueError) as err:  # torch's zip reader, a truncated pickle
        raise _not_a_checkpoint(path, f"torch.load cannot read it ({_first_line(err)})") from err
    return unwrap_state_dict(ckpt, key, use_ema)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def save_safetensors(state_dict: Mapping[str, Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Save a state dict as safetensors (tensors made contiguous and un-shared)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state_dict.items()}, os.fspath(path),
              metadata=metadata)


def convert_official(src: str | os.PathLike, dst: str | os.PathLike, model: str | torch.nn.Module | None = None, *,
                     key: str | None = None, use_ema: bool = False, unsafe: bool = False,
                     model_kwargs: dict | None = None) -> dict[str, Tensor]:
    """Convert an official checkpoint into a safetensors file (or a ``.pth`` holding only tensors).

    Args:
        src: The official file (see :func:`load_official`).
        dst: Output path; ``.safetensors`` (recommended) or ``.pth``/``.pt`` (a plain tensor dict).
        model: Optional timm model name or instance; when given, its family's ``checkpoint_filter_fn``
            renames old keys, fixes 1×1-conv/Linear shapes and checks that every key matches
            (built on the meta device, so no memory is spent).
        key: Sub-dict holding the weights.
        use_ema: Prefer EMA weights.
        unsafe: Allow full unpickling of ``src`` (see :func:`load_official`).
        model_kwargs: Extra ``timm.create_model`` arguments when ``model`` is a name (e.g. ``num_classes``).

    Returns:
        The converted state dict.
    """
    import sys

    sd = load_official(src, key=key, use_ema=use_ema, unsafe=unsafe)
    if model is not None:
        if isinstance(model, str):
            import timm

            with torch.device("meta"):
                model = timm.create_model(model, pretrained=False, **(model_kwargs or {}))
        filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            sd = filter_fn(sd, model)
    if os.fspath(dst).endswith(".safetensors"):
        save_safetensors(sd, dst, metadata={"source": os.path.basename(os.fspath(src)), "format": "pt"})
    else:
        torch.save({k: v.contiguous() for k, v in sd.items()}, dst)
    return sd

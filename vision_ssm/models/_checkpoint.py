"""Checkpoint unwrapping, once for every model family and task.

A training checkpoint wraps its weights in a container (``{"model": sd, "optimizer": ...}`` for
VMamba, ``{"state_dict": sd, ...}`` for MambaVision and timm, ``{"net": sd, ...}`` for ADer/MambaAD)
and prefixes their names with the wrappers used in training (DDP's ``module.``, ``torch.compile``'s
``_orig_mod.``). :func:`clean_checkpoint` undoes both; each family's ``checkpoint_filter_fn`` then
only maps upstream names onto its own.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from timm.models import clean_state_dict
from torch import Tensor

__all__ = ["CONTAINER_KEYS", "EMA_KEYS", "clean_checkpoint", "unwrap_checkpoint"]

#: Containers that hold the weights, tried in this order (timm's and MambaVision's ``state_dict``,
#: VMamba's ``model``, ADer's ``net``, a bare ``module``). Nested containers are descended.
CONTAINER_KEYS = ("state_dict", "model", "net", "module")
#: EMA containers, tried first when ``use_ema=True``.
EMA_KEYS = ("state_dict_ema", "model_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap_checkpoint(checkpoint: Mapping[str, Any], key: str | None = None, use_ema: bool = False) -> Mapping:
    """The mapping that holds the weights inside a (possibly nested) training checkpoint.

    Args:
        checkpoint: The loaded object.
        key: Take ``checkpoint[key]``; by default descend into the first of :data:`EMA_KEYS` (only with
            ``use_ema``) and :data:`CONTAINER_KEYS` whose value is a mapping, as long as there is one.
        use_ema: Prefer EMA weights when the file has them.

    Raises:
        KeyError: ``key`` is not in the checkpoint.
    """
    if key is not None:
        return checkpoint[key]
    keys = (EMA_KEYS if use_ema else ()) + CONTAINER_KEYS
    sd = checkpoint
    while True:
        inner = next((sd[k] for k in keys if isinstance(sd.get(k), Mapping)), None)
        if inner is None:
            return sd
        sd = inner


def _strip_common(state_dict: dict, prefix: str) -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def clean_checkpoint(
        checkpoint: Mapping[str, Any],
        *,
        key: str | None = None,
        use_ema: bool = False,
        common_prefixes: tuple[str, ...] = (),
        non_tensors: Literal["raise", "drop"] = "raise",
) -> dict[str, Tensor]:
    """A plain ``{name: tensor}`` state dict from a checkpoint: unwrap, then strip wrapper prefixes.

    Args:
        checkpoint: A state dict or a training checkpoint (see :func:`unwrap_checkpoint`).
        key: Container holding the weights (default: automatic).
        use_ema: Prefer EMA weights.
        common_prefixes: Further prefixes stripped, in order, only when *every* key carries them (e.g.
            MambaVision's Hugging Face wrapper ``model.``).
        non_tensors: What to do with a non-tensor value in the selected mapping: ``"raise"`` a
            ``ValueError`` naming it, or ``"drop"`` it.

    Returns:
        The state dict, with DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` stripped from every key
        (timm's :func:`~timm.models.clean_state_dict`, then once more for older timm releases).

    Raises:
        KeyError: ``key`` is not in the checkpoint.
        ValueError: A non-tensor value with ``non_tensors="raise"``.
    """
    sd = unwrap_checkpoint(checkpoint, key, use_ema)
    out = {}
    for k, v in clean_state_dict(dict(sd)).items():
        if not isinstance(v, Tensor):
            if non_tensors == "drop":
                continue
            raise ValueError(f"checkpoint entry {k!r} is a {type(v).__name__}, not a tensor; pass key= to select "
                             f"the weights (top-level keys: {sorted(checkpoint)[:10]})")
        for prefix in _WRAPPER_PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    for prefix in common_prefixes:
        out = _strip_common(out, prefix)
    return out

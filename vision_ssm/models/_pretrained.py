"""``build_model_with_cfg`` with clear errors for the weight source, shared by the model families.

- a local file given as ``pretrained_cfg_overlay=dict(file=...)`` is checked first: a missing file raises
  ``FileNotFoundError`` and a file that is not a checkpoint raises
  :class:`~vision_ssm.models._official.NotACheckpointError` (instead of torch's advice to unpickle it);
- ``pretrained=True`` without network access (a ``URLError`` or a Hub connection error) and without a local
  source raises :class:`PretrainedWeightsUnavailableError`, which says how to give a local file;
- a model with no registered weights says the same instead of only "use pretrained=False".
"""
from __future__ import annotations

import os
from typing import Any

from timm.models import build_model_with_cfg
from torch import nn

from ._official import check_checkpoint_file

__all__ = ["PretrainedWeightsUnavailableError", "build_with_weights"]


class PretrainedWeightsUnavailableError(RuntimeError):
    """``pretrained=True`` found no weights it could read (offline, or none registered); the message says how
    to give a local file."""


def _local_hint(variant: str, filename: str = "weights.pth") -> str:
    return (f"give a local file instead: timm.create_model({variant!r}, pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='/path/to/{filename}'))")


def _registered_url(variant: str) -> str:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(variant)
    return (cfg.url or "") if cfg is not None else ""


def build_with_weights(model_cls: type[nn.Module], variant: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """:func:`timm.models.build_model_with_cfg` with the checks of the module docstring.

    Raises:
        FileNotFoundError: the overlay's ``file`` does not exist.
        NotACheckpointError: the overlay's ``file`` is not a checkpoint.
        PretrainedWeightsUnavailableError: the weights could not be downloaded, or none are registered, and no
            local source was given.
    """
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    local = overlay.get("file") or overlay.get("state_dict") is not None
    if pretrained and overlay.get("file"):
        check_checkpoint_file(overlay["file"])
    try:
        return build_model_with_cfg(model_cls, variant, pretrained, **kwargs)
    except OSError as err:  # urllib's URLError, requests / huggingface_hub connection and cache-miss errors
        if not pretrained or local:
            raise
        name = os.path.basename((overlay.get("url") or _registered_url(variant)).split("?")[0]) or "weights.pth"
        raise PretrainedWeightsUnavailableError(
            f"{variant}: pretrained=True could not fetch the weights ({type(err).__name__}: {err}). Without network "
            f"access, {_local_hint(variant, name)}"
        ) from err
    except RuntimeError as err:
        if pretrained and not local and "No pretrained weights exist" in str(err):
            raise PretrainedWeightsUnavailableError(
                f"No pretrained weights exist for {variant} (none are registered); use pretrained=False, or "
                f"{_local_hint(variant)}"
            ) from err
        raise

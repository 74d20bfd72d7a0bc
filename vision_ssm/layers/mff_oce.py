"""MFF_OCE: MambaAD's multi-scale feature fusion and one-class embedding (the encoder → decoder bridge).

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``MFF_OCE``, after RD4AD's ``BN_layer``). Upstream
hard-codes ResNet-34 channels (64, 128, 256 → 512); here the channels follow the encoder, and the
defaults reproduce upstream exactly for any encoder with those channels.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models.resnet import Bottleneck
from torch import Tensor, nn

__all__ = ["MFFOCE", "MFF_OCE"]


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, bias: bool = False, dd=None):
    dd = dd or {}
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias, **dd)
    return conv, nn.BatchNorm2d(out_chs, **dd)


class MFFOCE(nn.Module):
    """Fuse three encoder scales into one compact embedding (NCHW in, NCHW out).

    With encoder features ``f0 (B, c0, 4h, 4w)``, ``f1 (B, c1, 2h, 2w)``, ``f2 (B, c2, h, w)``::

        p0  = ReLU(bn1(conv1(f0)))                      conv1: 3×3, stride 2, c0 → c1, no bias
        p1  = ReLU(bn21(conv21(f1))) + p0               conv21: 1×1, c1 → c1, bias
        s   = ReLU(bn2(conv2(p1))) + ReLU(bn31(conv31(f2)))   conv2: 3×3 s2 c1 → c2; conv31: 1×1 c2 → c2, bias
        s   = ReLU(bnf(convf(s)))                       convf: 1×1, c2 → c2, bias
        out = bn_layer(s)                               ``num_blocks`` timm Bottlenecks (planes = out_chs / 4),
                                                        the first with stride 2 and a 1×1 conv + BN shortcut
                                                        → ``(B, out_chs, ceil(h/2), ceil(w/2))``

    Args:
        in_chs: Encoder channels ``(c0, c1, c2)`` (ResNet-18/34 layers 1–3: ``(64, 128, 256)``).
        out_chs: Output channels; default ``2·c2`` (512 for ResNet-34, as upstream).
        num_blocks: Bottleneck blocks in ``bn_layer`` (upstream 3).

    State-dict keys (as upstream, under ``mff_oce.``): ``conv1``, ``bn1``, ``conv21``, ``bn21``,
    ``conv2``, ``bn2``, ``conv31``, ``bn31``, ``convf``, ``bnf``, ``bn_layer.{i}.*``.
    """

    def __init__(
        self,
        in_chs: Sequence[int] = (64, 128, 256),
        out_chs: int | None = None,
        num_blocks: int = 3,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        c0, c1, c2 = in_chs
        out_chs = out_chs or 2 * c2
        if out_chs % Bottleneck.expansion:
            raise ValueError(f"out_chs must be divisible by {Bottleneck.expansion}, got {out_chs}")
        planes = out_chs // Bottleneck.expansion
        self.in_chs = tuple(in_chs)
        self.out_chs = out_chs
        self.conv1, self.bn1 = _conv_bn(c0, c1, 3, stride=2, dd=dd)
        self.conv2, self.bn2 = _conv_bn(c1, c2, 3, stride=2, dd=dd)
        self.conv21, self.bn21 = _conv_bn(c1, c1, 1, bias=True, dd=dd)
        self.conv31, self.bn31 = _conv_bn(c2, c2, 1, bias=True, dd=dd)
        self.convf, self.bnf = _conv_bn(c2, c2, 1, bias=True, dd=dd)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(*_conv_bn(c2, out_chs, 1, stride=2, dd=dd))
        blocks = [Bottleneck(c2, planes, stride=2, downsample=downsample, **dd)]
        blocks += [Bottleneck(out_chs, planes, **dd) for _ in range(num_blocks - 1)]
        self.bn_layer = nn.Sequential(*blocks)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Upstream init: convs kaiming-normal (fan_out, ReLU), norms weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Fuse ``[f0, f1, f2]`` (NCHW, strides ×1, ×2, ×4 of each other) into ``(B, out_chs, h', w')``."""
        f0, f1, f2 = features
        p0 = self.relu(self.bn1(self.conv1(f0)))
        p1 = self.relu(self.bn21(self.conv21(f1))) + p0
        s = self.relu(self.bn2(self.conv2(p1))) + self.relu(self.bn31(self.conv31(f2)))
        s = self.relu(self.bnf(self.convf(s)))
        return self.bn_layer(s)


MFF_OCE = MFFOCE  # upstream name

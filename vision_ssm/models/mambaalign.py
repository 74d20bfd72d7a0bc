"""MambaAlign: RGB + auxiliary-modality anomaly segmentation with QuadSnake Mamba blocks.

Upstream: https://github.com/hoangcuongbk80/MambaAlign (no paper, no weights; the committed model cannot
be built). This is the intended pipeline (``docs/layers/mambaalign.md``) built on the library's blocks:

``rgb (B, 3, H, W), aux (B, A, H, W)`` → a two-branch timm CNN (convolutions shared between the
modalities, BatchNorm per modality) → stages 3–5 of each modality through their own
:class:`~vision_ssm.layers.PerModalMamba` → :class:`~vision_ssm.layers.CrossMambaInteraction` on stage 5
(replacing it) → :class:`~vision_ssm.layers.AlignmentAwareFusion` → a segmentation decoder (logits at
input size) and an image head (one logit from the pooled fused map, pooled once; the score is the
sigmoid of that logit, applied once).

``aux_chans=0`` builds the RGB-only baseline of the same model: one backbone branch, the RGB PMM stacks, no
CMI (stage 5 is the RGB PMM output) and an AAF over the RGB scales alone (``model(rgb)``).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from ..layers import AlignmentAwareFusion, CrossMambaInteraction, PerModalMamba
from ..layers._options import merge_ssm_cfg
from ._checkpoint import clean_checkpoint

__all__ = ["MambaAlign", "ModalBatchNorm2d", "ModalStemConv", "checkpoint_filter_fn"]


class ModalBatchNorm2d(nn.Module):
    """BatchNorm with one set of statistics and affine parameters per modality.

    Layout: ``(2B, C, H, W)``, the RGB batch first and the auxiliary batch second; each half is
    normalised by its own ``BatchNorm2d`` (``rgb``, ``aux``), both initialised from ``bn``.
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.rgb = bn
        self.aux = _copy_bn(bn)

    def forward(self, x: Tensor) -> Tensor:
        """``(2B, C, H, W) → (2B, C, H, W)``."""
        half = x.shape[0] // 2
        return torch.cat([self.rgb(x[:half]), self.aux(x[half:])], dim=0)


def _copy_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    return copy.deepcopy(bn)


class ModalStemConv(nn.Module):
    """The first convolution when the auxiliary input has ``A ≠ 3`` channels: the RGB conv and its own.

    Layout: ``(2B, max(3, A), H, W)`` packed (RGB first, each half zero-padded to the wider channel count)
    → ``(2B, C_out, H', W')``. The auxiliary weight starts as the mean of the RGB filters over their input
    channels (``A = 1``) or the RGB filters tiled over ``A`` channels and scaled by ``3/A`` (``A > 1``).
    """

    def __init__(self, conv: nn.Conv2d, aux_chans: int) -> None:
        super().__init__()
        self.rgb = conv
        self.aux = nn.Conv2d(aux_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                             conv.dilation, conv.groups, conv.bias is not None, device=conv.weight.device)
        with torch.no_grad():
            w = conv.weight
            if aux_chans == 1:
                self.aux.weight.copy_(w.mean(dim=1, keepdim=True))
            else:
                reps = math.ceil(aux_chans / w.shape[1])
                self.aux.weight.copy_(w.repeat(1, reps, 1, 1)[:, :aux_chans] * (w.shape[1] / aux_chans))
            if conv.bias is not None:
                self.aux.bias.copy_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(2B, max(3, A), H, W) → (2B, C_out, H', W')``."""
        half = x.shape[0] // 2
        return torch.cat([self.rgb(x[:half, : self.rgb.in_channels]), self.aux(x[half:, : self.aux.in_channels])])


def _make_two_branch(backbone: nn.Module, in_chans: int, aux_chans: int) -> None:
    """In place: every BatchNorm2d → :class:`ModalBatchNorm2d`; the stem conv → :class:`ModalStemConv` if needed."""
    stem_done = aux_chans == in_chans
    for name, mod in list(backbone.named_modules()):
        parent = backbone.get_submodule(name.rpartition(".")[0]) if "." in name else backbone
        leaf = name.rpartition(".")[2]
        if isinstance(mod, nn.BatchNorm2d):
            setattr(parent, leaf, ModalBatchNorm2d(mod))
        elif isinstance(mod, nn.Conv2d) and not stem_done and mod.in_channels == in_chans:
            setattr(parent, leaf, ModalStemConv(mod, aux_chans))
            stem_done = True


def _head_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


class MambaAlign(nn.Module):
    """MambaAlign: two-modality anomaly segmentation (RGB + infrared / depth / normals).

    ``model(rgb, aux)`` with ``rgb (B, in_chans, H, W)`` and ``aux (B, aux_chans, H, W)`` returns
    ``(seg_logits (B, 1, H, W), image_logit (B,))``; :meth:`predict` gives the sigmoid of both (applied once).
    Any ``H×W`` that the backbone accepts works (QuadSnake routes are built per map size).

    Args:
        backbone: timm model name (built ``features_only``); ResNet family by default.
        backbone_indices: Three ``out_indices`` (stages 3, 4, 5: ``(2, 3, 4)`` for ResNets).
        backbone_pretrained: Load timm's pretrained backbone weights (downloads; only when asked).
        backbone_checkpoint: Local file of backbone weights (a timm / torchvision ``state_dict``, e.g. one
            written by the library's offline encoder initialisation), loaded through timm without a download.
            Both modalities' BatchNorms start from its statistics.
        backbone_kwargs: Extra ``timm.create_model`` arguments of the backbone.
        aux_chans: Channels ``A`` of the auxiliary input (1: infrared / depth, 3: normals); 0 builds the
            RGB-only baseline (no auxiliary branch, no CMI; called as ``model(rgb)``).
        in_chans: Channels of the RGB input.
        pmm_depths: QSVSS blocks per stage and modality (upstream ``(4, 4, 4)``).
        cmi_dim: CMI token channels ``D`` (upstream 256).
        cmi_state: CMI state size ``N`` (upstream 128).
        fused_dim: AAF output channels ``F`` (upstream 256).
        decoder_dim: Hidden channels of the segmentation decoder (upstream 128).
        head_hidden: Hidden units of the image head (upstream 256).
        drop_path_rate: Largest stochastic-depth rate of the QSVSS blocks (linear over each stack).
        backbone_lr_mult: Learning-rate multiplier of the backbone in :meth:`param_groups` (upstream 0.25).
        d_state: State size of the QSVSS route mixers (folded into ``ssm_cfg``).
        ssm_cfg: :class:`~vision_ssm.layers.Mamba` keyword arguments of every route mixer.
        backend: Selective-scan backend of every SSM (``None``: automatic).
        num_classes: Must be 0 (accepted for timm's builder).

    Raises:
        ValueError: ``num_classes`` given, ``aux_chans`` negative, or not three backbone stages.
    """

    def __init__(
        self,
        backbone: str = "wide_resnet50_2",
        backbone_indices: Sequence[int] = (2, 3, 4),
        backbone_pretrained: bool = False,
        backbone_checkpoint: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        aux_chans: int = 1,
        in_chans: int = 3,
        pmm_depths: Sequence[int] = (4, 4, 4),
        cmi_dim: int = 256,
        cmi_state: int = 128,
        fused_dim: int = 256,
        decoder_dim: int = 128,
        head_hidden: int = 256,
        drop_path_rate: float = 0.0,
        backbone_lr_mult: float = 0.25,
        d_state: int = 16,
        ssm_cfg: dict[str, Any] | None = None,
        backend: str | None = None,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("MambaAlign is not a classifier; num_classes must be 0")
        if len(backbone_indices) != 3 or len(pmm_depths) != 3:
            raise ValueError("MambaAlign uses three backbone stages: give three backbone_indices and pmm_depths")
        if not isinstance(aux_chans, int) or aux_chans < 0:
            raise ValueError(f"MambaAlign: aux_chans must be an int >= 0 (0 = RGB only), got {aux_chans!r}")
        self.num_classes = 0
        self.in_chans, self.aux_chans = in_chans, aux_chans
        self.modalities = ("rgb", "aux") if aux_chans else ("rgb",)
        self.backbone_lr_mult = backbone_lr_mult
        kw = dict(features_only=True, out_indices=tuple(backbone_indices), in_chans=in_chans,
                  **(backbone_kwargs or {}))
        if backbone_checkpoint:
            kw["pretrained_cfg_overlay"] = dict(file=str(backbone_checkpoint))
        self.backbone = timm.create_model(backbone, pretrained=bool(backbone_pretrained or backbone_checkpoint), **kw)
        self.feature_channels = chs = list(self.backbone.feature_info.channels())
        if aux_chans:
            _make_two_branch(self.backbone, in_chans, aux_chans)

        self.ssm_cfg = merge_ssm_cfg(ssm_cfg, {"d_state": d_state}, backend=backend)
        n = max(pmm_depths)
        dpr = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        for m in self.modalities:
            self.add_module(f"pmm_{m}", nn.ModuleList(
                PerModalMamba(c, depth=d, drop_path=dpr[:d], ssm_cfg=self.ssm_cfg) for c, d in zip(chs, pmm_depths)))
        self.cmi = (CrossMambaInteraction(chs[2], d_inner=cmi_dim, d_state=cmi_state, backend=backend)
                    if aux_chans else None)
        self.aaf = AlignmentAwareFusion(tuple(chs), out_dim=fused_dim, num_modalities=len(self.modalities))
        self.decoder = nn.Sequential(
            nn.Conv2d(fused_dim, decoder_dim, 3, padding=1, bias=False), nn.BatchNorm2d(decoder_dim), nn.SiLU(),
            nn.Conv2d(decoder_dim, decoder_dim, 3, padding=1, bias=False), nn.BatchNorm2d(decoder_dim), nn.SiLU(),
            nn.Conv2d(decoder_dim, 1, 1),
        )
        self.head = nn.Sequential(nn.Linear(fused_dim, head_hidden), nn.SiLU(), nn.Linear(head_hidden, 1))
        self.head.apply(_head_init)

    # -- timm contract ------------------------------------------------------------------------------------------------
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the QSVSS blocks (and the backbone stages, where timm supports it) in the backward pass."""
        for stack in (*self.pmm_rgb, *getattr(self, "pmm_aux", ())):
            stack.grad_checkpointing = enable
        if hasattr(self.backbone, "set_grad_checkpointing"):
            self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """fnmatch patterns of SSM parameters kept out of weight decay."""
        return {"*.A_log", "*.D", "cmi.A_bar", "cmi.B_bar"}

    def param_groups(self, lr: float = 1e-4, weight_decay: float = 1e-5) -> list[dict[str, Any]]:
        """Optimizer parameter groups: backbone at ``lr · backbone_lr_mult``, the rest at ``lr``; biases,
        norm parameters and the :meth:`no_weight_decay` parameters without weight decay.

        Returns:
            Up to four ``{"params", "lr", "weight_decay", "name"}`` dicts (empty groups left out).
        """
        import fnmatch

        skip = self.no_weight_decay()
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            no_wd = p.ndim <= 1 or any(fnmatch.fnmatch(name, pat) for pat in skip)
            groups.setdefault((name.startswith("backbone."), no_wd), []).append(p)
        out = []
        for (bb, no_wd), params in sorted(groups.items()):
            out.append({"params": params, "lr": lr * (self.backbone_lr_mult if bb else 1.0),
                        "weight_decay": 0.0 if no_wd else weight_decay,
                        "name": f"{'backbone' if bb else 'head'}{'_no_decay' if no_wd else ''}"})
        return out

    # -- forward ------------------------------------------------------------------------------------------------------
    def _check_inputs(self, rgb: Tensor, aux: Tensor | None) -> None:
        if not self.aux_chans:
            if aux is not None:
                raise ValueError(f"MambaAlign was built RGB-only (aux_chans=0) but got an auxiliary input "
                                 f"{tuple(aux.shape)}; call model(rgb), or build it with aux_chans=A")
            if rgb.dim() != 4 or rgb.shape[1] != self.in_chans:
                raise ValueError(f"MambaAlign: rgb must be (B, {self.in_chans}, H, W), got {tuple(rgb.shape)}")
            return
        if aux is None:
            raise ValueError(f"MambaAlign needs the auxiliary modality: call model(rgb, aux) with aux "
                             f"(B, {self.aux_chans}, H, W)")
        if rgb.dim() != 4 or rgb.shape[1] != self.in_chans:
            raise ValueError(f"MambaAlign: rgb must be (B, {self.in_chans}, H, W), got {tuple(rgb.shape)}")
        if aux.dim() != 4 or aux.shape[1] != self.aux_chans:
            raise ValueError(f"MambaAlign: aux must be (B, {self.aux_chans}, H, W) (the model was built with "
                             f"aux_chans={self.aux_chans}), got {tuple(aux.shape)}")
        if aux.shape[0] != rgb.shape[0] or aux.shape[2:] != rgb.shape[2:]:
            raise ValueError(f"MambaAlign: rgb {tuple(rgb.shape)} and aux {tuple(aux.shape)} must have the same "
                             f"batch size and H×W (the modalities are pixel-aligned)")

    def forward_backbone(self, rgb: Tensor, aux: Tensor | None = None) -> tuple[list[Tensor], list[Tensor] | None]:
        """Both modalities through the shared backbone in one batch: two lists of three NCHW maps
        (the second ``None`` for the RGB-only model)."""
        self._check_inputs(rgb, aux)
        if aux is None:
            return list(self.backbone(rgb)), None
        c = max(rgb.shape[1], aux.shape[1])
        x = torch.cat([F.pad(rgb, (0, 0, 0, 0, 0, c - rgb.shape[1])), F.pad(aux, (0, 0, 0, 0, 0, c - aux.shape[1]))])
        feats = self.backbone(x)
        B = rgb.shape[0]
        return [f[:B] for f in feats], [f[B:] for f in feats]

    def forward_features(self, rgb: Tensor, aux: Tensor | None = None) -> Tensor:
        """``rgb, aux`` → the fused map ``(B, fused_dim, H/8, W/8)`` (ResNet strides)."""
        f_rgb, f_aux = self.forward_backbone(rgb, aux)
        f_rgb = [pmm(f) for pmm, f in zip(self.pmm_rgb, f_rgb)]
        if f_aux is None:  # RGB only: no cross-modal interaction
            return self.aaf(f_rgb[0], None, f_rgb[1], None, f_rgb[2], None)
        f_aux = [pmm(f) for pmm, f in zip(self.pmm_aux, f_aux)]
        r5, a5 = self.cmi(f_rgb[2], f_aux[2])  # replaces stage 5 (no residual)
        return self.aaf(f_rgb[0], f_aux[0], f_rgb[1], f_aux[1], r5, a5)

    def forward_head(self, fused: Tensor, out_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Fused map → ``(seg_logits (B, 1, *out_size), image_logit (B,))``; the map is pooled exactly once."""
        seg = F.interpolate(self.decoder(fused), size=out_size, mode="bilinear", align_corners=False)
        return seg, self.head(fused.mean(dim=(2, 3))).squeeze(1)

    def forward(self, rgb: Tensor, aux: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``rgb (B, in_chans, H, W), aux (B, aux_chans, H, W)`` → ``(seg_logits (B, 1, H, W), image_logit (B,))``.

        Raises:
            ValueError: ``aux`` missing (or given to an RGB-only model), or a modality with the wrong channels,
                batch size or size.
        """
        self._check_inputs(rgb, aux)
        return self.forward_head(self.forward_features(rgb, aux), tuple(rgb.shape[-2:]))

    @torch.no_grad()
    def predict(self, rgb: Tensor, aux: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(anomaly_map (B, H, W), score (B,))``: the sigmoid of the two logits (applied once)."""
        seg, logit = self(rgb, aux)
        return seg.squeeze(1).sigmoid(), logit.sigmoid()


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """Unwrap a training checkpoint (containers, DDP / ``torch.compile`` prefixes); there are no official weights."""
    return clean_checkpoint(state_dict)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (3, 512, 512),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "backbone.conv1",
        "classifier": None,
        "origin_url": "https://github.com/hoangcuongbk80/MambaAlign",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "mambaalign_wide_resnet50": _cfg(),
    "mambaalign_resnet18": _cfg(input_size=(3, 256, 256)),
    "test_mambaalign": _cfg(input_size=(3, 64, 64)),
})


def _create_mambaalign(variant: str, pretrained: bool = False, **kwargs: Any) -> MambaAlign:
    if kwargs.get("features_only"):
        raise ValueError("MambaAlign has no features_only mode; use model.forward_features(rgb, aux)")
    return build_model_with_cfg(MambaAlign, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


@register_model
def mambaalign_wide_resnet50(pretrained: bool = False, **kwargs: Any) -> MambaAlign:
    """Upstream's configuration: Wide-ResNet-50-2 stages 3–5 (512, 1024, 2048), 4 QSVSS blocks per stage and
    modality, CMI ``D=256, N=128``, AAF to 256 channels, 512×512 input, 1-channel auxiliary input."""
    args = dict(backbone="wide_resnet50_2", pmm_depths=(4, 4, 4), cmi_dim=256, cmi_state=128, fused_dim=256)
    return _create_mambaalign("mambaalign_wide_resnet50", pretrained, **dict(args, **kwargs))


@register_model
def mambaalign_resnet18(pretrained: bool = False, **kwargs: Any) -> MambaAlign:
    """CPU-sized MambaAlign: ResNet-18 stages 3–5 (128, 256, 512), 1 QSVSS block per stage and modality,
    route mixers with ``d_state=8, expand=1``, CMI ``D=128, N=32``, AAF to 128, decoder 64, 256×256 input."""
    args = dict(backbone="resnet18", pmm_depths=(1, 1, 1), d_state=8, ssm_cfg={"expand": 1}, cmi_dim=128,
                cmi_state=32, fused_dim=128, decoder_dim=64, head_hidden=128)
    return _create_mambaalign("mambaalign_resnet18", pretrained, **dict(args, **kwargs))


@register_model
def test_mambaalign(pretrained: bool = False, **kwargs: Any) -> MambaAlign:
    """A tiny MambaAlign for CI: ResNet-18 layout with channels (16, 32, 64, 128), one QSVSS block per stage,
    ``d_state=4``, CMI ``D=32, N=8``, AAF to 32; 64×64 input."""
    args = dict(backbone="resnet18", backbone_kwargs=dict(channels=(16, 32, 64, 128), stem_width=16),
                pmm_depths=(1, 1, 1), d_state=4, ssm_cfg={"expand": 1}, cmi_dim=32, cmi_state=8, fused_dim=32,
                decoder_dim=16, head_hidden=32, drop_path_rate=0.1)
    return _create_mambaalign("test_mambaalign", pretrained, **dict(args, **kwargs))

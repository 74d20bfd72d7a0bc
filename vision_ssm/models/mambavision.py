"""MambaVision: A Hybrid Mamba-Transformer Vision Backbone.

Paper: "MambaVision: A Hybrid Mamba-Transformer Vision Backbone", Ali Hatamizadeh and Jan Kautz,
CVPR 2025 - https://arxiv.org/abs/2407.08083

```
@inproceedings{hatamizadeh2025mambavision,
  title={MambaVision: A Hybrid Mamba-Transformer Vision Backbone},
  author={Hatamizadeh, Ali and Kautz, Jan},
  booktitle={CVPR},
  year={2025}
}
```

Original code and weights: https://github.com/NVlabs/MambaVision (the weights are published under
NVIDIA's licence terms on the Hugging Face Hub, ``nvidia/MambaVision-*``).

This is an independent re-implementation for vision_ssm with timm's model contract: it runs on CPU
with any selective-scan backend, returns unpooled features from ``forward_features``, and loads the
official checkpoints through :func:`checkpoint_filter_fn`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, trunc_normal_
from timm.models import generate_default_cfgs, named_apply, register_model
from torch import Tensor, nn

from ..layers._options import merge_ssm_cfg
from ..layers._validate import check_choice, check_image, check_int, check_ints, check_number, check_rate
from ..layers.mambavision_stage import MambaVisionStage, MambaVisionStem
from ._checkpoint import clean_checkpoint
from ._features import check_output_stride, feature_take_indices, to_output_fmt
from ._pretrained import build_with_weights

__all__ = ["MambaVision", "checkpoint_filter_fn"]


class MambaVision(nn.Module):
    """MambaVision: stride-4 conv stem, two conv stages, two windowed Mamba/attention stages, BN head.

    Stage ``i`` has ``dim * 2**i`` channels at stride ``4 * 2**i``; stages 2-4 start with a stride-2
    conv downsample. ``forward_features`` returns the BatchNorm'ed final map ``(B, 8*dim, H/32, W/32)``
    (NCHW, unpooled); ``forward_head`` pools and classifies. Any input size works: hybrid stages
    zero-pad the map to a multiple of their window size.

    Args:
        in_chans: Input image channels.
        num_classes: Classifier outputs (0: no classifier).
        global_pool: Pooling of the head (``'avg'``, ``'max'``, ..., ``''`` for none).
        dim: Channels of stage 1 (``dim`` upstream).
        in_dim: Channels after the first stem conv (``in_dim`` upstream).
        depths: Blocks per stage.
        num_heads: Attention heads per stage (used by the hybrid stages).
        window_size: Window side per stage (used by the hybrid stages).
        conv_stages: How many leading stages are conv stages (upstream: 2).
        mlp_ratio: MLP ratio of the hybrid blocks.
        qkv_bias: Attention ``qkv`` bias.
        drop_rate: Dropout before the classifier.
        proj_drop_rate: Dropout after attention projections and in MLPs.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth, rising linearly from 0 over all blocks.
        layer_scale: Layer-scale init of the hybrid blocks (``None``: off; 1e-5 for B/L/L2/L3).
        layer_scale_conv: Layer-scale init of the conv blocks (``None`` in every official model).
        d_state: SSM state size of the Mamba mixers.
        d_conv: Depthwise conv kernel of the Mamba mixers.
        expand: Inner expansion of the Mamba mixers.
        double_dt_bias: The upstream double ``dt_proj.bias`` (``Δ = softplus(W·dt + 2b)``); keep ``True``
            for official weights.
        keep_dt_init: Keep Mamba's ``dt_proj`` initialisation. Upstream's ``_init_weights`` overwrites it
            (trunc-normal weight, zero bias); ``False`` reproduces that. Only matters when training from scratch.
        ssm_cfg: Further :class:`~vision_ssm.layers.MambaVisionMixer` keyword arguments (the mixer's names:
            ``dt_rank``, ``dt_min``, ...). ``d_state``, ``d_conv``, ``expand`` and ``double_dt_bias`` above
            (upstream's names) are folded into one dict with these entries on top, and that dict is handed
            down (``MambaVisionStage → MambaVisionBlock → MambaVisionMixer``).
        backend: Selective-scan backend of every Mamba mixer (``None``: automatic; see :mod:`vision_ssm.ops`).
        output_stride: timm's feature-stride argument; only ``32`` (or ``None``) is valid (no dilated stages);
            other values raise ``ValueError``.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            dim: int = 80,
            in_dim: int = 32,
            depths: Sequence[int] = (1, 3, 8, 4),
            num_heads: Sequence[int] = (2, 4, 8, 16),
            window_size: Sequence[int] = (8, 8, 14, 7),
            conv_stages: int = 2,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.2,
            layer_scale: float | None = None,
            layer_scale_conv: float | None = None,
            d_state: int = 8,
            d_conv: int = 3,
            expand: float = 1,
            double_dt_bias: bool = True,
            keep_dt_init: bool = False,
            ssm_cfg: dict | None = None,
            backend: str | None = None,
            output_stride: int | None = None,
    ) -> None:
        super().__init__()
        check_output_stride(output_stride, "MambaVision", len(depths))
        self.in_chans = check_int(in_chans, "in_chans", "MambaVision")
        check_int(num_classes, "num_classes", "MambaVision", minimum=0)
        check_int(dim, "dim", "MambaVision")
        check_int(in_dim, "in_dim", "MambaVision")
        depths = check_ints(depths, "depths", "MambaVision")
        num_stages = len(depths)
        num_heads = check_ints(num_heads, "num_heads", "MambaVision", length=num_stages)
        window_size = check_ints(window_size, "window_size", "MambaVision", length=num_stages)
        check_int(conv_stages, "conv_stages", "MambaVision", minimum=0)
        check_number(mlp_ratio, "mlp_ratio", "MambaVision", low=0.0, low_open=True)
        for name, rate in (("drop_rate", drop_rate), ("proj_drop_rate", proj_drop_rate),
                           ("attn_drop_rate", attn_drop_rate), ("drop_path_rate", drop_path_rate)):
            check_rate(rate, name, "MambaVision")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        dims = [int(dim * 2 ** i) for i in range(num_stages)]
        self.num_features = self.head_hidden_size = dims[-1]

        self.stem = MambaVisionStem(in_chans, in_dim, dim)
        total = sum(depths)
        dpr = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        upstream = dict(d_state=d_state, d_conv=d_conv, expand=expand, double_dt_bias=double_dt_bias)
        self.ssm_cfg = merge_ssm_cfg(ssm_cfg, upstream, backend=backend)
        stages, self.feature_info = [], []
        prev = dim
        for i in range(num_stages):
            stages.append(MambaVisionStage(
                prev,
                dims[i],
                depths[i],
                num_heads=num_heads[i],
                window_size=window_size[i],
                conv=i < conv_stages,
                downsample=i > 0,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
                layer_scale=layer_scale,
                layer_scale_conv=layer_scale_conv,
                ssm_cfg=self.ssm_cfg,
            ))
            prev = dims[i]
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate)
        named_apply(partial(_init_weights, keep_dt_init=keep_dt_init), self)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """fnmatch patterns of parameters to exclude from weight decay (SSM ``A_log`` and ``D``)."""
        return {"*.A_log", "*.D"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for layer-wise learning-rate decay."""
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks of every stage in the backward pass (activation checkpointing)."""
        self.grad_checkpointing = enable
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The final linear classifier."""
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (``num_classes=0``: none) and optionally the pooling (``''``: none).

        A new classifier (``num_classes > 0``) on a head whose pooling was removed gets the model's
        pooling back unless ``global_pool`` says otherwise (a linear layer cannot classify a map).
        """
        if global_pool is None and num_classes > 0 and not self.head.global_pool.pool_type:
            global_pool = self.global_pool or "avg"
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_intermediates(
            self,
            x: Tensor,
            indices: int | Sequence[int] | None = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Forward returning the stage outputs (before the next stage's downsample).

        Args:
            x: Images ``(B, C, H, W)``.
            indices: Stages to return: ``None`` all, an int the last n, a sequence explicit indices.
            norm: Apply the final BatchNorm to the last stage's output when it is returned.
            stop_early: Stop after the last requested stage.
            output_fmt: Layout of the intermediates, ``'NCHW'`` ``(B, C_i, H_i, W_i)`` or ``'NHWC'``; the final
                features stay NCHW, as ``forward_features``.
            intermediates_only: Return only the list of intermediates.

        Returns:
            ``(final_features, intermediates)`` or ``intermediates``.
        """
        check_choice(output_fmt, "output_fmt", "MambaVision.forward_intermediates", ("NCHW", "NHWC"))
        check_image(x, "MambaVision", self.in_chans, self.stem[0].weight)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        x = self.stem(x)
        stages = self.stages if not stop_early or torch.jit.is_scripting() else self.stages[:max_index + 1]
        feat_idx = -1
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                y = self.norm(x) if norm and feat_idx == last_idx else x
                intermediates.append(to_output_fmt(y, "NCHW", output_fmt))
        if intermediates_only:
            return intermediates
        if feat_idx == last_idx:
            x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: int | Sequence[int] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last needed one (and optionally the norm / head); returns the indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> normalised final map ``(B, num_features, H/32, W/32)`` (unpooled)."""
        check_image(x, "MambaVision", self.in_chans, self.stem[0].weight)
        x = self.stem(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool and classify ``forward_features`` output; ``pre_logits=True`` returns the pooled features."""
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module, name: str = "", keep_dt_init: bool = False) -> None:
    """Upstream init: Linear trunc-normal(.02) with zero bias, LayerNorm/BatchNorm 1/0 (convs keep torch's)."""
    if isinstance(module, nn.Linear):
        if keep_dt_init and name.endswith("dt_proj"):
            return
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


_UPSTREAM_RULES = (
    (re.compile(r"^patch_embed\.conv_down\."), lambda m: "stem."),
    (re.compile(r"^levels\.(\d+)\.downsample\.reduction\.0\."), lambda m: f"stages.{int(m.group(1)) + 1}.downsample."),
    (re.compile(r"^levels\.(\d+)\.blocks\."), lambda m: f"stages.{m.group(1)}.blocks."),
    (re.compile(r"^head\.(?=(weight|bias)$)"), lambda m: "head.fc."),
)


def _rename_upstream_key(key: str) -> str:
    for pattern, repl in _UPSTREAM_RULES:
        m = pattern.match(key)
        if m:
            return repl(m) + key[m.end():]
    return key


def checkpoint_filter_fn(state_dict: dict, model: MambaVision) -> dict[str, Tensor]:
    """Convert an official MambaVision checkpoint to this model's keys.

    Accepts a raw state dict or a training checkpoint (``{'state_dict': ...}`` / ``{'model': ...}``,
    the official loader's order; :func:`~vision_ssm.models._checkpoint.clean_checkpoint`), strips
    ``module.`` / ``_orig_mod.`` (DDP / ``torch.compile``), ``encoder.`` and the Hugging Face wrapper's
    ``model.`` prefixes (when every key has them), drops non-tensor entries, and renames
    ``patch_embed.conv_down.*`` -> ``stem.*``, ``levels.i.blocks.*`` -> ``stages.i.blocks.*``,
    ``levels.i.downsample.reduction.0.*`` -> ``stages.{i+1}.downsample.*`` and ``head.*`` -> ``head.fc.*``.
    Checkpoints already in this layout pass through.

    Raises:
        ValueError: The checkpoint's tensors do not fit the model (another variant): the offending
            keys are listed. The classifier and the first conv are exempt (timm adapts them for
            ``num_classes`` / ``in_chans`` changes); missing or unexpected keys are left to
            ``load_state_dict(strict=...)``.
    """
    sd = clean_checkpoint(state_dict, common_prefixes=("encoder.", "model."), non_tensors="drop")
    native = any(k.startswith(("stem.", "stages.")) for k in sd)
    out = {(k if native else _rename_upstream_key(k)): v for k, v in sd.items()}

    target = model.state_dict()
    exempt = ("head.fc.", "stem.0.")
    bad = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in out.items()
        if k in target and not k.startswith(exempt) and v.shape != target[k].shape
    ]
    if bad:
        shown = "\n  ".join(bad[:12]) + (f"\n  ... and {len(bad) - 12} more" if len(bad) > 12 else "")
        raise ValueError(
            f"checkpoint does not fit this MambaVision configuration ({len(bad)} shape mismatches); "
            f"is it another variant?\n  {shown}"
        )
    return out


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.0",
        "classifier": "head.fc",
        "paper_ids": "arXiv:2407.08083",
        "paper_name": "MambaVision: A Hybrid Mamba-Transformer Vision Backbone",
        "origin_url": "https://github.com/NVlabs/MambaVision",
        **kwargs,
    }


def _hf(repo: str, file: str, **kwargs) -> dict:
    return _cfg(
        url=f"https://huggingface.co/{repo}/resolve/main/{file}",
        hf_hub_id=repo,
        hf_hub_filename=file,
        **kwargs,
    )


default_cfgs = generate_default_cfgs({
    "mambavision_tiny.in1k": _hf("nvidia/MambaVision-T-1K", "mambavision_tiny_1k.pth.tar"),
    "mambavision_tiny2.in1k": _hf("nvidia/MambaVision-T2-1K", "mambavision_tiny2_1k.pth.tar", crop_pct=0.98),
    "mambavision_small.in1k": _hf("nvidia/MambaVision-S-1K", "mambavision_small_1k.pth.tar", crop_pct=0.93),
    "mambavision_base.in1k": _hf("nvidia/MambaVision-B-1K", "mambavision_base_1k.pth.tar"),
    "mambavision_large.in1k": _hf("nvidia/MambaVision-L-1K", "mambavision_large_1k.pth.tar"),
    "mambavision_large2.in1k": _hf("nvidia/MambaVision-L2-1K", "mambavision_large2_1k.pth.tar"),
    "mambavision_base_21k.in21k_ft_in1k": _hf("nvidia/MambaVision-B-21K", "mambavision_base_21k.pth.tar"),
    "mambavision_large_21k.in21k_ft_in1k": _hf("nvidia/MambaVision-L-21K", "mambavision_large_21k.pth.tar"),
    "mambavision_large2_512_21k.in21k_ft_in1k": _hf(
        "nvidia/MambaVision-L2-512-21K", "mambavision_L2_21k_240m_512.pth.tar",
        input_size=(3, 512, 512), pool_size=(16, 16), crop_pct=0.93, crop_mode="squash"),
    "mambavision_large3_256_21k.in21k_ft_in1k": _hf(
        "nvidia/MambaVision-L3-256-21K", "mambavision_L3_21k_740m_256.pth.tar",
        input_size=(3, 256, 256), pool_size=(8, 8)),
    "mambavision_large3_512_21k.in21k_ft_in1k": _hf(
        "nvidia/MambaVision-L3-512-21K", "mambavision_L3_21k_740m_512.pth.tar",
        input_size=(3, 512, 512), pool_size=(16, 16), crop_pct=0.93, crop_mode="squash"),
    "test_mambavision": _cfg(input_size=(3, 160, 160), pool_size=(5, 5)),
})


def _create_mambavision(variant: str, pretrained: bool = False, **kwargs) -> MambaVision:
    return build_with_weights(
        MambaVision,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **kwargs,
    )


def _make(variant: str, pretrained: bool, model_args: dict, kwargs: dict) -> MambaVision:
    return _create_mambavision(variant, pretrained=pretrained, **dict(model_args, **kwargs))


_T = dict(dim=80, in_dim=32, depths=(1, 3, 8, 4), num_heads=(2, 4, 8, 16), window_size=(8, 8, 14, 7),
          drop_path_rate=0.2)
_B = dict(dim=128, in_dim=64, depths=(3, 3, 10, 5), num_heads=(2, 4, 8, 16), window_size=(8, 8, 14, 7),
          drop_path_rate=0.3, layer_scale=1e-5)
_L = dict(_B, dim=196, num_heads=(4, 8, 16, 32))
_L3 = dict(dim=256, in_dim=64, depths=(3, 3, 20, 10), num_heads=(4, 8, 16, 32), drop_path_rate=0.5,
           layer_scale=1e-5)


@register_model
def mambavision_tiny(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T (31.79M, 224): dim 80, depths 1-3-8-4."""
    return _make("mambavision_tiny", pretrained, _T, kwargs)


@register_model
def mambavision_tiny2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T2 (35.10M, 224): dim 80, depths 1-3-11-4."""
    return _make("mambavision_tiny2", pretrained, dict(_T, depths=(1, 3, 11, 4)), kwargs)


@register_model
def mambavision_small(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-S (50.14M, 224): dim 96, depths 3-3-7-5."""
    return _make("mambavision_small", pretrained, dict(_T, dim=96, in_dim=64, depths=(3, 3, 7, 5)), kwargs)


@register_model
def mambavision_base(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B (97.69M, 224): dim 128, depths 3-3-10-5, layer scale 1e-5."""
    return _make("mambavision_base", pretrained, _B, kwargs)


@register_model
def mambavision_large(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L (227.96M, 224): dim 196, depths 3-3-10-5, layer scale 1e-5."""
    return _make("mambavision_large", pretrained, _L, kwargs)


@register_model
def mambavision_large2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2 (241.55M, 224): dim 196, depths 3-3-12-5, layer scale 1e-5."""
    return _make("mambavision_large2", pretrained, dict(_L, depths=(3, 3, 12, 5)), kwargs)


@register_model
def mambavision_base_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B pretrained on ImageNet-21K, fine-tuned on ImageNet-1K (same architecture as B)."""
    return _make("mambavision_base_21k", pretrained, _B, kwargs)


@register_model
def mambavision_large_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L pretrained on ImageNet-21K, fine-tuned on ImageNet-1K (same architecture as L)."""
    return _make("mambavision_large_21k", pretrained, _L, kwargs)


@register_model
def mambavision_large2_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2 at 512 (IN-21K -> IN-1K): windows 32/16 in stages 3/4."""
    args = dict(_L, depths=(3, 3, 12, 5), window_size=(8, 8, 32, 16))
    return _make("mambavision_large2_512_21k", pretrained, args, kwargs)


@register_model
def mambavision_large3_256_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3 at 256 (739.57M, IN-21K -> IN-1K): dim 256, depths 3-3-20-10, windows 16/8."""
    return _make("mambavision_large3_256_21k", pretrained, dict(_L3, window_size=(8, 8, 16, 8)), kwargs)


@register_model
def mambavision_large3_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3 at 512 (739.57M, IN-21K -> IN-1K): dim 256, depths 3-3-20-10, windows 32/16."""
    return _make("mambavision_large3_512_21k", pretrained, dict(_L3, window_size=(8, 8, 32, 16)), kwargs)


@register_model
def test_mambavision(pretrained: bool = False, **kwargs) -> MambaVision:
    """A tiny MambaVision for CI (dim 16, depths 1-1-2-2, windows 5/5 at 160)."""
    args = dict(dim=16, in_dim=8, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4), window_size=(8, 8, 5, 5),
                drop_path_rate=0.0)
    return _make("test_mambavision", pretrained, args, kwargs)

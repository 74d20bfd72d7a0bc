"""VMamba: Visual State Space Model

A timm-compatible implementation of `VMamba: Visual State Space Model` - https://arxiv.org/abs/2401.10166

```
@article{liu2024vmamba,
  title={VMamba: Visual State Space Model},
  author={Liu, Yue and Tian, Yunjie and Zhao, Yuzhong and Yu, Hongtian and Xie, Lingxi and Wang, Yaowei and
          Ye, Qixiang and Jiao, Jianbin and Liu, Yunfan},
  journal={arXiv preprint arXiv:2401.10166},
  year={2024}
}
```

Original code and weights from: https://github.com/MzeroMiko/VMamba (MIT). State-dict keys equal the
official ones (``patch_embed.*``, ``layers.{i}.blocks.{j}.{norm,op,norm2,mlp}.*``, ``layers.{i}.downsample.*``,
``classifier.{norm,head}.*``), so official checkpoints load 1:1 (see :func:`checkpoint_filter_fn`).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import partial

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from ..layers._options import merge_ssm_cfg
from ..layers._validate import check_choice, check_image, check_int, check_ints, check_number, check_rate
from ..layers.vss import VMambaHead, VMambaStage, VSSBlock, vmamba_downsample, vmamba_norm, vmamba_patch_embed
from ..layers.weight_init import init_linear_layernorm
from ._checkpoint import clean_checkpoint
from ._features import check_output_stride, feature_take_indices, to_output_fmt
from ._pretrained import build_with_weights

__all__ = ["VMamba", "VMambaStage", "checkpoint_filter_fn"]


class VMamba(nn.Module):
    """VMamba (``VSSM`` upstream): patch embed → 4 stages of :class:`~vision_ssm.layers.VSSBlock` → norm → head.

    ``forward_features`` returns unpooled ``(B, num_features, H/32, W/32)`` (NCHW) for every layout;
    inside, the ``ln`` models run channels-last and the ``ln2d`` models channels-first.

    Args:
        in_chans: Input channels.
        num_classes: Classifier classes (0: no head).
        global_pool: ``"avg"`` (or any timm pool type; ``""`` keeps the map).
        depths: Blocks per stage.
        dims: Stage-1 width (doubled per stage) or the four widths.
        patch_size: Stem stride.
        ssm_d_state: SS2D state size.
        ssm_ratio: SS2D inner width ratio.
        ssm_dt_rank: SS2D ``dt_rank``.
        ssm_act_layer: SS2D activation.
        ssm_conv: SS2D depthwise conv size.
        ssm_conv_bias: SS2D conv bias.
        ssm_drop_rate: SS2D output dropout.
        ssm_gate: SS2D ``z`` gate (``False`` = v2 ``_noz``).
        ssm_force_fp32: SS2D casts scan inputs to fp32 (float16 ones always).
        scan: Scan family of every SS2D (VMamba: ``"sweep"``).
        directions: Number of scan directions (VMamba: 4).
        mlp_ratio: MLP ratio in each block (0: no MLP, vanilla VMamba).
        mlp_act_layer: MLP activation.
        mlp_drop_rate: MLP dropout.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth, linear over all blocks.
        patch_norm: Norm in the stem.
        norm_layer: ``"ln"`` (channels-last) or ``"ln2d"``/``"bn"`` (channels-first).
        downsample_version: ``"v1"`` (patch merging), ``"v2"`` or ``"v3"`` (strided conv).
        patchembed_version: ``"v1"`` (4×4 conv) or ``"v2"`` (two 3×3 convs).
        post_norm: Norm after each branch.
        ssm_cfg: Further :class:`~vision_ssm.layers.SS2D` keyword arguments (SS2D's names: ``d_state``,
            ``dt_init``, ``out_norm``, ...). The ``ssm_*``/``scan``/``directions`` arguments above (upstream's
            names) are folded into one dict with these entries on top, and that dict is what every
            :class:`~vision_ssm.layers.VSSBlock` hands to its SS2D.
        backend: Selective-scan backend of every SS2D (``None``: automatic; see :mod:`vision_ssm.ops`).
        ssm_kwargs: Deprecated spelling of ``ssm_cfg``.
        output_stride: timm's feature-stride argument; only ``32`` (or ``None``) is valid (VMamba's stages have
            no dilated mode); other values raise ``ValueError``.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            depths: Sequence[int] = (2, 2, 9, 2),
            dims: int | Sequence[int] = 96,
            patch_size: int = 4,
            ssm_d_state: int = 16,
            ssm_ratio: float = 2.0,
            ssm_dt_rank: int | str = "auto",
            ssm_act_layer: str = "silu",
            ssm_conv: int = 3,
            ssm_conv_bias: bool = True,
            ssm_drop_rate: float = 0.0,
            ssm_gate: bool = True,
            ssm_force_fp32: bool = True,
            scan: str = "sweep",
            directions: int = 4,
            mlp_ratio: float = 4.0,
            mlp_act_layer: str = "gelu",
            mlp_drop_rate: float = 0.0,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.1,
            patch_norm: bool = True,
            norm_layer: str = "ln",
            downsample_version: str = "v2",
            patchembed_version: str = "v1",
            post_norm: bool = False,
            ssm_cfg: dict | None = None,
            backend: str | None = None,
            ssm_kwargs: dict | None = None,
            output_stride: int | None = None,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_output_stride(output_stride, "VMamba", len(depths))
        self.in_chans = check_int(in_chans, "in_chans", "VMamba")
        check_int(num_classes, "num_classes", "VMamba", minimum=0)
        depths = check_ints(depths, "depths", "VMamba")
        num_stages = len(depths)
        if isinstance(dims, bool) or not isinstance(dims, int):
            dims = check_ints(dims, "dims", "VMamba", length=num_stages)
        else:
            dims = [int(check_int(dims, "dims", "VMamba") * 2 ** i) for i in range(num_stages)]
        check_int(patch_size, "patch_size", "VMamba")
        check_rate(drop_rate, "drop_rate", "VMamba")
        check_rate(drop_path_rate, "drop_path_rate", "VMamba")
        check_number(mlp_ratio, "mlp_ratio", "VMamba", low=0.0)
        check_choice(patchembed_version, "patchembed_version", "VMamba", ("v1", "v2"))
        check_choice(downsample_version, "downsample_version", "VMamba", ("v1", "v2", "v3"))
        # the v1 stem is a patch_size x patch_size conv without padding: smaller images cannot pass it
        self._min_size = patch_size if patchembed_version == "v1" else 1
        norm, self.channels_first = vmamba_norm(norm_layer)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = dims[-1]
        self.dims = dims

        self.patch_embed = vmamba_patch_embed(
            in_chans, dims[0], patch_size, patch_norm, norm_layer, patchembed_version, **dd)
        n_blocks = sum(depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        if ssm_kwargs is not None:
            warnings.warn("VMamba(ssm_kwargs=...) is deprecated; use ssm_cfg=", FutureWarning, stacklevel=2)
            ssm_cfg = {**ssm_kwargs, **(ssm_cfg or {})}
        upstream = dict(d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank, act_layer=ssm_act_layer,
                        d_conv=ssm_conv, conv_bias=ssm_conv_bias, dropout=ssm_drop_rate, gate=ssm_gate,
                        force_fp32=ssm_force_fp32, scan=scan, directions=directions)
        self.ssm_cfg = merge_ssm_cfg(ssm_cfg, upstream, backend=backend)
        block = partial(
            VSSBlock, norm_layer=norm_layer, ssm_cfg=self.ssm_cfg, mlp_ratio=mlp_ratio, mlp_act_layer=mlp_act_layer,
            mlp_drop_rate=mlp_drop_rate, post_norm=post_norm, **dd,
        )
        stages = []
        self.feature_info = []
        start = 0
        for i in range(num_stages):
            blocks = [block(dims[i], drop_path=dpr[start + j]) for j in range(depths[i])]
            start += depths[i]
            last = i == num_stages - 1
            down = nn.Identity() if last else vmamba_downsample(dims[i], dims[i + 1], norm_layer, downsample_version,
                                                                **dd)
            stages.append(VMambaStage(blocks, down))
            self.feature_info.append(dict(num_chs=dims[i], reduction=patch_size * 2 ** i, module=f"layers.{i}.blocks"))
        self.layers = nn.Sequential(*stages)
        self.classifier = VMambaHead(self.num_features, num_classes, global_pool, norm(self.num_features, **dd),
                                     drop_rate, **dd)
        self.apply(init_linear_layernorm)  # upstream VSSM._init_weights; SS2D keeps its mamba init

    # ---- timm API ---------------------------------------------------------------------------------

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """fnmatch patterns: the SSM parameters (``A_logs``, ``Ds``, ``dt_projs_bias``), norms and biases."""
        return {"*A_logs", "*Ds", "*dt_projs_bias", "*.bias", "*norm*.weight", "patch_embed.2.weight",
                "patch_embed.7.weight", "*downsample.3.weight"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^layers\.(\d+)" if coarse else [
                (r"^layers\.(\d+)\.blocks\.(\d+)", None),
                (r"^layers\.(\d+)\.downsample", (99999,)),
                (r"^classifier\.norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        head = self.classifier
        if global_pool is None and num_classes > 0 and not head.global_pool.pool_type:
            global_pool = "avg"  # a linear head needs pooled features
        if global_pool is not None:
            head.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        ref = next(self.parameters())
        head.head = (nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
                     if num_classes > 0 else nn.Identity())

    def _to_nchw(self, x: Tensor) -> Tensor:
        return x if self.channels_first else x.permute(0, 3, 1, 2)

    def forward_intermediates(
            self,
            x: Tensor,
            indices: int | list[int] | None = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Stage outputs (before each downsample, NCHW) and the final features.

        Args:
            x: ``(B, C, H, W)`` images.
            indices: Last ``n`` stages (int) or explicit stage indices; all by default.
            norm: Apply the final norm to the last stage's intermediate.
            stop_early: Stop after the last requested stage.
            output_fmt: Layout of the intermediates, ``"NCHW"`` or ``"NHWC"`` (the final features stay NCHW,
                as ``forward_features``).
            intermediates_only: Return only the list.

        Returns:
            ``(forward_features(x), [stage maps])`` or the list.
        """
        check_choice(output_fmt, "output_fmt", "VMamba.forward_intermediates", ("NCHW", "NHWC"))
        check_image(x, "VMamba", self.in_chans, self.patch_embed[0].weight, self._min_size)
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        last = len(self.layers) - 1
        x = self.patch_embed(x)
        stages = self.layers if (torch.jit.is_scripting() or not stop_early) else self.layers[:max_index + 1]
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                y = self.classifier.norm(x) if norm and i == last else x
                intermediates.append(to_output_fmt(y, "NCHW" if self.channels_first else "NHWC", output_fmt))
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return self._to_nchw(self.classifier.norm(x)), intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages (and optionally norm / head) not needed for ``indices``; returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[:max_index + 1]
        self.layers[-1].downsample = nn.Identity()
        if prune_norm:
            self.classifier.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W)`` → unpooled, normed ``(B, num_features, H/32, W/32)``."""
        check_image(x, "VMamba", self.in_chans, self.patch_embed[0].weight, self._min_size)
        x = self.layers(self.patch_embed(x))
        return self._to_nchw(self.classifier.norm(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.classifier(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def load_pretrained(self, path: str, unsafe: bool = False) -> None:
        """Load an official or converted checkpoint file (timm ``custom_load`` hook; see :func:`load_official`).

        The classifier is skipped when its shape differs from this model's (other ``num_classes``),
        and the stem is adapted when ``in_chans`` differs.
        """
        from timm.models import adapt_input_conv

        from ._official import load_official

        sd = checkpoint_filter_fn(load_official(path, unsafe=unsafe), self)
        own = self.state_dict()
        w = sd.get("patch_embed.0.weight")
        if w is not None and w.shape[1] != own["patch_embed.0.weight"].shape[1]:
            sd["patch_embed.0.weight"] = adapt_input_conv(own["patch_embed.0.weight"].shape[1], w)
        head_ok = all(k in own and own[k].shape == sd[k].shape for k in sd if k.startswith("classifier.head."))
        if not head_ok or not any(k.startswith("classifier.head.") for k in own):
            sd = {k: v for k, v in sd.items() if not k.startswith("classifier.head.")}
        result = self.load_state_dict(sd, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("classifier.head.")]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"{path}: missing keys {missing}, unexpected keys {result.unexpected_keys}")


# ---- official checkpoints -------------------------------------------------------------------------

_RENAMES = [
    (r"^patch_embed\.proj\.", "patch_embed.0."),
    (r"^patch_embed\.norm\.", "patch_embed.2."),
    (r"\.ln_1\.", ".norm."),
    (r"\.self_attention\.", ".op."),
    (r"^norm\.", "classifier.norm."),
    (r"^head\.", "classifier.head."),
]
_DROP = (r"^outnorm\d+\.", r"^pos_embed$")


def checkpoint_filter_fn(state_dict: dict[str, Tensor], model: VMamba) -> dict[str, Tensor]:
    """Map an official VMamba state dict (any release) onto ``model``.

    Accepts the weights at top level or in a training checkpoint
    (:func:`~vision_ssm.models._checkpoint.clean_checkpoint`: ``"model"``/``"state_dict"`` containers,
    ``module.``/``_orig_mod.`` prefixes); renames upstream's older keys
    (``patch_embed.proj/norm``, ``ln_1``, ``self_attention``, top-level ``norm``/``head``); drops the
    detection backbone's ``outnorm{i}`` and ``pos_embed``; reshapes ``(out, in, 1, 1)`` 1×1-conv weights to
    the 2-D ``Linear``/``Linear2d`` shape (and back).

    Raises:
        ValueError: The file does not fit the model: the message lists the missing, unexpected and
            shape-mismatched keys. The classifier head and the stem's input channels are not checked,
            because timm replaces/adapts them for another ``num_classes``/``in_chans``.
    """
    state_dict = clean_checkpoint(state_dict)
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if any(re.search(p, k) for p in _DROP):
            continue
        for pat, rep in _RENAMES:
            k = re.sub(pat, rep, k)
        t = own.get(k)
        if t is not None and v.dim() == 4 and t.dim() == 2 and v.shape[2:] == (1, 1):
            v = v.flatten(1)
        elif t is not None and v.dim() == 2 and t.dim() == 4 and t.shape[2:] == (1, 1):
            v = v[:, :, None, None]
        out[k] = v

    def checked(key: str) -> bool:
        return not key.startswith("classifier.head.")

    missing = sorted(k for k in own if k not in out and checked(k))
    unexpected = sorted(k for k in out if k not in own and checked(k))
    def stem_in_chans_only(k: str) -> bool:  # timm adapts the stem to another in_chans
        a, b = out[k].shape, own[k].shape
        return k == "patch_embed.0.weight" and a[0] == b[0] and a[2:] == b[2:]

    mismatched = sorted(
        f"{k}: file {tuple(out[k].shape)} vs model {tuple(own[k].shape)}" for k in out
        if k in own and checked(k) and out[k].shape != own[k].shape and not stem_in_chans_only(k)
    )
    if missing or unexpected or mismatched:
        def fmt(keys):
            return ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "") or "none"
        raise ValueError(
            f"checkpoint does not match {type(model).__name__}: missing keys: {fmt(missing)}; "
            f"unexpected keys: {fmt(unexpected)}; shape mismatches: {fmt(mismatched)}"
        )
    return out


# ---- configs --------------------------------------------------------------------------------------

_URL = "https://github.com/MzeroMiko/VMamba/releases/download/"


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url,
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.0", "classifier": "classifier.head",
        "license": "mit", "paper_ids": "arXiv:2401.10166", "paper_name": "VMamba: Visual State Space Model",
        "origin_url": "https://github.com/MzeroMiko/VMamba",
        # official .pth files pickle a yacs config; VMamba.load_pretrained reads them without unpickling it
        "custom_load": True,
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "vmamba_tiny.in1k": _cfg(url=_URL + "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth"),
    "vmamba_small.in1k": _cfg(url=_URL + "%23v0cls/vssmsmall_dp03_ckpt_epoch_238.pth"),
    "vmamba_base.in1k": _cfg(url=_URL + "%23v0cls/vssmbase_dp06_ckpt_epoch_241.pth"),
    "vmamba_tiny_s2l5.in1k": _cfg(url=_URL + "%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth"),
    "vmamba_small_s2l15.in1k": _cfg(url=_URL + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth"),
    "vmamba_base_s2l15.in1k": _cfg(url=_URL + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth"),
    "vmamba_tiny_s1l8.in1k": _cfg(url=_URL + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"),
    "vmamba_small_s1l20.in1k": _cfg(url=_URL + "%23v2cls/vssm1_small_0229s_ckpt_epoch_240.pth"),
    "vmamba_base_s1l20.in1k": _cfg(url=_URL + "%23v2cls/vssm1_base_0229s_ckpt_epoch_225.pth"),
    "test_vmamba.untrained": _cfg(input_size=(3, 128, 128), pool_size=(4, 4), crop_pct=1.0, custom_load=True),
})


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    overlay = kwargs.get("pretrained_cfg_overlay")
    if pretrained and overlay and (overlay.get("file") or overlay.get("url")) and "custom_load" not in overlay:
        # timm resets custom_load for a user-supplied file/url; keep VMamba.load_pretrained, which reads official
        # .pth files (with their pickled config) safely, maps old keys and adapts head / stem.
        kwargs["pretrained_cfg_overlay"] = dict(overlay, custom_load=True)
    return build_with_weights(
        VMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
        **kwargs,
    )


# vanilla (v0): channels-last LayerNorm, patch-merging downsample, gated SS2D d_state 16, no MLP
_V0 = dict(ssm_d_state=16, ssm_ratio=2.0, ssm_conv_bias=True, ssm_gate=True, mlp_ratio=0.0, norm_layer="ln",
           downsample_version="v1", patchembed_version="v1")
# v2 (forward_type v05_noz): channels-first LayerNorm2d, conv downsample, d_state 1, no gate, MLP 4
_V2 = dict(ssm_d_state=1, ssm_conv_bias=False, ssm_gate=False, ssm_force_fp32=False, mlp_ratio=4.0,
           norm_layer="ln2d", downsample_version="v3", patchembed_version="v2")


def _make(variant: str, base: dict, pretrained: bool, kwargs: dict, **args) -> VMamba:
    return _create_vmamba(variant, pretrained=pretrained, **{**base, **args, **kwargs})


@register_model
def vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba vanilla-T (v0), 22.9M params, 82.2% top-1."""
    return _make("vmamba_tiny", _V0, pretrained, kwargs, dims=96, depths=(2, 2, 9, 2), drop_path_rate=0.2)


@register_model
def vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba vanilla-S (v0), 83.5% top-1."""
    return _make("vmamba_small", _V0, pretrained, kwargs, dims=96, depths=(2, 2, 27, 2), drop_path_rate=0.3)


@register_model
def vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba vanilla-B (v0), 83.7% top-1."""
    return _make("vmamba_base", _V0, pretrained, kwargs, dims=128, depths=(2, 2, 27, 2), drop_path_rate=0.6)


@register_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T v2 (ssm_ratio 2, 5 blocks in stage 3), 82.5% top-1."""
    return _make("vmamba_tiny_s2l5", _V2, pretrained, kwargs, dims=96, depths=(2, 2, 5, 2), ssm_ratio=2.0,
                 drop_path_rate=0.2)


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S v2 (ssm_ratio 2), 83.6% top-1."""
    return _make("vmamba_small_s2l15", _V2, pretrained, kwargs, dims=96, depths=(2, 2, 15, 2), ssm_ratio=2.0,
                 drop_path_rate=0.3)


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B v2 (ssm_ratio 2), 83.9% top-1."""
    return _make("vmamba_base_s2l15", _V2, pretrained, kwargs, dims=128, depths=(2, 2, 15, 2), ssm_ratio=2.0,
                 drop_path_rate=0.6)


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T v2 (ssm_ratio 1, 8 blocks in stage 3), 30.2M params, 82.6% top-1."""
    return _make("vmamba_tiny_s1l8", _V2, pretrained, kwargs, dims=96, depths=(2, 2, 8, 2), ssm_ratio=1.0,
                 drop_path_rate=0.2)


@register_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S v2 (ssm_ratio 1), 83.3% top-1."""
    return _make("vmamba_small_s1l20", _V2, pretrained, kwargs, dims=96, depths=(2, 2, 20, 2), ssm_ratio=1.0,
                 drop_path_rate=0.3)


@register_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B v2 (ssm_ratio 1), 83.8% top-1."""
    return _make("vmamba_base_s1l20", _V2, pretrained, kwargs, dims=128, depths=(2, 2, 20, 2), ssm_ratio=1.0,
                 drop_path_rate=0.5)


@register_model
def test_vmamba(pretrained: bool = False, **kwargs) -> VMamba:
    """Tiny v2-style VMamba for CI (dims 16, depths 1,1,2,1)."""
    return _make("test_vmamba", _V2, pretrained, kwargs, dims=16, depths=(1, 1, 2, 1), ssm_ratio=1.0,
                 drop_path_rate=0.1)

"""MambaAD: exploring state space models for multi-class unsupervised anomaly detection.

Paper: "MambaAD: Exploring State Space Models for Multi-class Unsupervised Anomaly Detection",
NeurIPS 2024, https://arxiv.org/abs/2404.06564.

Original code: https://github.com/lewandofskee/MambaAD (``model/mambaad.py``), built on
https://github.com/zhangzjn/ADer (``model/mambaad.py``, the same model with other key names).
Reimplemented for vision_ssm on the shared SS2D / scan-order ops; official checkpoints of both
repositories load through :func:`checkpoint_filter_fn`.

A frozen ImageNet encoder (ResNet-34 layers 1–3 upstream) gives three feature maps; MFF_OCE fuses them
into one compact embedding; the Mamba decoder (MambaUPNet: LSS layers of HSS blocks with hybrid
Hilbert scans) reconstructs the three encoder maps from it. Training minimises the MSE between the two
feature pyramids; at test time the per-pixel cosine distance between them is the anomaly map.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from ..layers._fx import is_fx_tracing
from ..layers._options import fold_legacy_ssm_kwargs, merge_ssm_cfg
from ..layers._validate import check_choice, check_image, check_int, check_ints, check_rate
from ..layers.lss import MambaUPNet, remap_lss_state_dict
from ..layers.mff_oce import MFFOCE
from ..ops import scan_order
from ._checkpoint import clean_checkpoint
from ._features import check_output_stride, feature_take_indices, to_output_fmt
from ._pretrained import build_with_weights
from .mambaad_scoring import gaussian_filter2d, mambaad_anomaly_map, mambaad_anomaly_score, mambaad_loss

__all__ = [
    "MambaAD",
    "MambaUPNet",
    "checkpoint_filter_fn",
    "mambaad_anomaly_map",
    "mambaad_anomaly_score",
    "mambaad_loss",
    "gaussian_filter2d",
]


# ----------------------------------------------------------------------------------------------------------------------
# The model


def _create_encoder(name: str, out_indices, in_chans: int, pretrained: bool | str, checkpoint: str | None, **kwargs):
    kw = dict(features_only=True, out_indices=tuple(out_indices), in_chans=in_chans, **kwargs)
    if checkpoint:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint)), **kw)
    if isinstance(pretrained, str):  # a pretrained tag, e.g. 'tv_in1k'
        return timm.create_model(f"{name.split('.')[0]}.{pretrained}", pretrained=True, **kw)
    return timm.create_model(name, pretrained=bool(pretrained), **kw)


class MambaAD(nn.Module):
    """MambaAD: frozen timm encoder → MFF_OCE → Mamba decoder, trained to reconstruct the encoder features.

    ``model(x)`` with ``x (B, in_chans, H, W)`` returns ``(enc, dec)``: two lists of three NCHW maps, finest
    first, pairwise of equal shape (ResNet-34 at 256×256: ``64@64², 128@32², 256@16²``). ``enc`` is computed
    without gradient; only MFF_OCE and the decoder (and the optional output projections) are trainable.
    The encoder stays in eval mode, also after ``model.train()``.

    Size rule: ``H`` and ``W`` must be multiples of ``2 · r`` where ``r`` is the encoder's stride at its last
    used scale (ResNet layer 3: 16, so multiples of 32), so that the decoder's ×2 steps land on the encoder
    pyramid. Every scan family works at any such size (the scan orders are built per map size); the orders
    equal upstream's for square maps whose decoder stages are powers of two (e.g. 256×256: 8, 16, 32, 64),
    which is all upstream supports. Inputs of 64×64 and larger keep every decoder map above 1×1 (instance
    norm needs more than one pixel in training).

    Args:
        encoder: timm model name of the encoder (built with ``features_only=True``). A ``name.tag``
            selects which pretrained weights ``encoder_pretrained=True`` loads.
        encoder_indices: Three ``out_indices`` of consecutive ×2 strides (ResNet: ``(1, 2, 3)`` = layers 1–3).
        encoder_pretrained: Load the encoder's timm pretrained weights (downloads; only when asked), or a
            tag string (``'tv_in1k'``). Default: random (a whole-model checkpoint usually supplies them).
        encoder_checkpoint: Local file with encoder weights (timm/torchvision ``state_dict``, e.g. upstream's
            ``resnet34-43635321.pth``), loaded through timm without any download.
        encoder_kwargs: Extra ``timm.create_model`` arguments for the encoder.
        fusion_dim: MFF_OCE output channels = decoder ``dims[0]`` (default ``2 · c2``; 512 for ResNet-34).
        fusion_blocks: Bottlenecks in MFF_OCE (upstream 3).
        depths: HSS blocks per decoder layer (upstream ``(3, 4, 6, 3)``).
        d_state: SSM state size.
        scan: Scan family (``'hilbert'``, ``'sweep'``, ``'snake'``, ``'zorder'``, ``'zigzag'``).
        num_directions: Scan directions per HSS block (2, 4 or 8).
        drop_path_rate: Largest decoder drop-path rate (upstream 0.2).
        img_size: Input size the stored ``scans.index_flat*`` buffers describe (upstream 256). It does not
            restrict the input size.
        store_scan_index: Keep upstream's ``scans.index_flat*`` buffers in the state dict (so checkpoints map
            1:1 to upstream's keys); ``False`` leaves them out (:func:`checkpoint_filter_fn` then drops them).
        loss_weight: λ of :meth:`loss` (upstream 5).
        gaussian_sigma: σ of :meth:`anomaly_map` (upstream 4).
        in_chans: Input channels of the encoder.
        num_classes: Must be 0 (MambaAD is not a classifier; accepted for timm's builder).
        ssm_cfg: Further :class:`~vision_ssm.layers.SS2D` keyword arguments of every decoder HSS block (SS2D's
            names). ``d_state``, ``scan`` and ``num_directions`` above are folded into one dict with these
            entries on top, and that dict is handed down (``MambaUPNet → LSSLayer → LSSModule → HSSBlock → SS2D``).
        backend: Selective-scan backend of every SS2D (``None``: automatic; see :mod:`vision_ssm.ops`).
        output_stride: timm's feature-stride argument; only ``32`` (or ``None``) is valid.
        **kwargs: Deprecated: SS2D options as keywords (now ``ssm_cfg``), honoured with a ``FutureWarning``.

    Feature access (timm contract): ``feature_info`` lists six NCHW maps, finest scale first, each encoder map
    followed by its decoder reconstruction (even indices 0, 2, 4: encoder; odd 1, 3, 5: decoder);
    :meth:`forward_intermediates` returns them and ``timm.create_model(..., features_only=True)`` wraps the
    model in timm's ``FeatureGetterNet``.
    :meth:`forward_features` is the fused MFF_OCE embedding ``(B, fusion_dim, H/32, W/32)`` (ResNet encoders).

    Submodules keep upstream's names so checkpoints map 1:1: ``net_t`` (encoder), ``mff_oce``, ``net_s``
    (decoder), plus ``proj`` (1×1 convs from decoder to encoder channels) only when they differ.
    """

    def __init__(
        self,
        encoder: str = "resnet34",
        encoder_indices: Sequence[int] = (1, 2, 3),
        encoder_pretrained: bool | str = False,
        encoder_checkpoint: str | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
        fusion_dim: int | None = None,
        fusion_blocks: int = 3,
        depths: Sequence[int] = (3, 4, 6, 3),
        d_state: int = 16,
        scan: str = "hilbert",
        num_directions: int = 8,
        drop_path_rate: float = 0.2,
        img_size: int | tuple[int, int] = 256,
        store_scan_index: bool = True,
        loss_weight: float = 5.0,
        gaussian_sigma: float = 4.0,
        in_chans: int = 3,
        num_classes: int = 0,
        ssm_cfg: dict[str, Any] | None = None,
        backend: str | None = None,
        output_stride: int | None = None,
        device=None,
        dtype=None,
        **kwargs: Any,
    ):
        super().__init__()
        if num_classes:
            raise ValueError(f"MambaAD is not a classifier; num_classes must be 0, got {num_classes!r}")
        dd = {"device": device, "dtype": dtype}
        check_output_stride(output_stride, "MambaAD")
        if not isinstance(encoder, str):
            raise TypeError(f"MambaAD: encoder must be a timm model name, got {encoder!r} ({type(encoder).__name__})")
        encoder_indices = check_ints(encoder_indices, "encoder_indices", "MambaAD", minimum=0, length=3)
        self.in_chans = check_int(in_chans, "in_chans", "MambaAD")
        check_ints(depths, "depths", "MambaAD", length=4)
        check_int(fusion_blocks, "fusion_blocks", "MambaAD")
        if fusion_dim is not None:
            check_int(fusion_dim, "fusion_dim", "MambaAD")
        check_rate(drop_path_rate, "drop_path_rate", "MambaAD")
        self.num_classes = 0
        self.loss_weight = loss_weight
        self.gaussian_sigma = gaussian_sigma

        self.net_t = _create_encoder(
            encoder, encoder_indices, in_chans, encoder_pretrained, encoder_checkpoint, **(encoder_kwargs or {}))
        if device is not None or dtype is not None:
            self.net_t.to(**{k: v for k, v in dd.items() if v is not None})
        self.net_t.requires_grad_(False)
        self.net_t.eval()
        info = self.net_t.feature_info
        enc_chs, red = list(info.channels()), list(info.reduction())
        if red[1] != 2 * red[0] or red[2] != 2 * red[1]:
            raise ValueError(f"encoder scales must have strides r, 2r, 4r; {encoder} {encoder_indices} gives {red}")
        self.encoder_channels = enc_chs
        self.encoder_reductions = red
        self.size_divisor = 2 * red[2]

        fusion_dim = fusion_dim or 2 * enc_chs[2]
        dims = [fusion_dim // 2**i for i in range(4)]
        if dims[-1] * 8 != fusion_dim:
            raise ValueError(f"fusion_dim must be divisible by 8, got {fusion_dim}")
        self.mff_oce = MFFOCE(enc_chs, fusion_dim, num_blocks=fusion_blocks, **dd)
        index_sizes = None
        if store_scan_index:
            h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
            if h % self.size_divisor or w % self.size_divisor:
                raise ValueError(f"img_size must be a multiple of {self.size_divisor}, got {img_size}")
            bh, bw = h // self.size_divisor, w // self.size_divisor
            index_sizes = [(bh << i) if bh == bw else (bh << i, bw << i) for i in range(4)]
        ssm_cfg = {**fold_legacy_ssm_kwargs(kwargs, "MambaAD"), **(ssm_cfg or {})}
        self.ssm_cfg = merge_ssm_cfg(ssm_cfg, dict(d_state=d_state, scan=scan, directions=num_directions),
                                     backend=backend)
        self.net_s = MambaUPNet(
            dims, depths, drop_path_rate=drop_path_rate, scan_index_sizes=index_sizes, ssm_cfg=self.ssm_cfg, **dd,
        )
        dec_chs = dims[:0:-1]  # finest first: dims[3], dims[2], dims[1]
        if list(dec_chs) != enc_chs:
            self.proj = nn.ModuleList([nn.Conv2d(d, e, 1, **dd) for d, e in zip(dec_chs, enc_chs)])
        else:
            self.proj = None
        # encoder maps in NHWC (a timm backbone built with output_fmt='NHWC'): decided here, so that forward
        # has no data-dependent branch (FX tracing)
        fmt = getattr(self.net_t, "output_fmt", "NCHW")
        self._encoder_nhwc = str(getattr(fmt, "value", fmt)) == "NHWC"
        enc_modules = [f"net_t.{m}" for m in info.module_name()]
        n_layers = len(depths)
        # timm's FeatureInfo needs non-decreasing reductions: encoder and decoder map of each scale side by side
        self.feature_info = []
        for i, (c, r, m) in enumerate(zip(enc_chs, red, enc_modules)):
            self.feature_info.append(dict(num_chs=c, reduction=r, module=m, stage=i))
            self.feature_info.append(dict(num_chs=c, reduction=r, module=f"net_s.layers_up.{n_layers - 1 - i}",
                                          stage=i))

    # -- training mode: the encoder is frozen and stays in eval mode --------------------------------------------------
    def train(self, mode: bool = True) -> MambaAD:
        super().train(mode)
        self.net_t.eval()
        return self

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the decoder's LSS modules in the backward pass (outputs unchanged)."""
        self.net_s.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """fnmatch patterns of SSM parameters usually kept out of weight decay (``A_logs``, ``Ds``, dt bias)."""
        return {"*.A_logs", "*.Ds", "*.dt_projs_bias"}

    # -- forward ------------------------------------------------------------------------------------------------------
    def _check_images(self, x: Tensor) -> None:
        first = next(self.net_t.parameters(), None)
        check_image(x, "MambaAD", self.in_chans, first)
        if is_fx_tracing():
            return
        H, W = x.shape[-2:]
        if H % self.size_divisor or W % self.size_divisor:
            raise ValueError(f"MambaAD: images must have H and W a multiple of {self.size_divisor}, got shape "
                             f"{tuple(x.shape)} (B, C, H, W); resize or pad them")

    def forward_encoder(self, x: Tensor) -> list[Tensor]:
        """The frozen encoder's three maps (NCHW, finest first), without gradient."""
        self._check_images(x)
        with torch.no_grad():
            feats = self.net_t(x)
        # timm backbones with NHWC features are brought to NCHW: by the encoder's declared output_fmt='NHWC'
        # (also right when H == C, and no data-dependent branch for FX), else, in eager mode, by their shape
        if self._encoder_nhwc:
            return [f.permute(0, 3, 1, 2) for f in feats]
        if is_fx_tracing():
            return list(feats)
        return [
            f.permute(0, 3, 1, 2) if f.shape[1] != c and f.shape[-1] == c else f
            for f, c in zip(feats, self.encoder_channels)
        ]

    def _decoder_present(self) -> None:
        if self.net_s is None:
            raise RuntimeError("MambaAD: the decoder was removed by prune_intermediate_layers (encoder maps only)")

    def forward_features(self, x: Tensor) -> Tensor:
        """The fused one-class embedding: MFF_OCE of the encoder maps, ``(B, fusion_dim, H/32, W/32)`` NCHW
        (ResNet encoders; ``H / (2·r)`` in general), the decoder's input."""
        self._decoder_present()
        return self.mff_oce(self.forward_encoder(x))

    def _decode(self, fused: Tensor) -> list[Tensor]:
        dec = self.net_s(fused)
        if self.proj is not None:
            dec = [p(d) for p, d in zip(self.proj, dec)]
        return dec

    def forward_decoder(self, enc: Sequence[Tensor]) -> list[Tensor]:
        """MFF_OCE + decoder (+ projections): encoder maps → reconstructed maps of the same shapes."""
        self._decoder_present()
        return self._decode(self.mff_oce(enc))

    def forward_intermediates(
            self,
            x: Tensor,
            indices: int | Sequence[int] | None = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The encoder and decoder maps of ``feature_info`` (timm's ``forward_intermediates`` contract).

        Args:
            x: Images ``(B, in_chans, H, W)``.
            indices: Maps to return, of six (finest scale first; even: encoder, odd: decoder): ``None`` all, an
                int the last n, a sequence explicit indices (negative allowed).
            norm: Accepted for the contract; MambaAD has no final norm.
            stop_early: Accepted for the contract; with ``intermediates_only`` the decoder runs only when a
                decoder map (odd index) is asked for.
            output_fmt: ``'NCHW'`` or ``'NHWC'`` for the returned maps.
            intermediates_only: Return only the list.

        Returns:
            ``(forward_features(x), maps)`` or ``maps``.
        """
        check_choice(output_fmt, "output_fmt", "MambaAD.forward_intermediates", ("NCHW", "NHWC"))
        take_indices, _ = feature_take_indices(len(self.feature_info), indices)
        enc = self.forward_encoder(x)
        need_decoder = any(i % 2 for i in take_indices)
        fused = None
        if need_decoder or not intermediates_only:
            self._decoder_present()
            fused = self.mff_oce(enc)
        dec = self._decode(fused) if need_decoder else [None] * len(enc)
        maps = [m for pair in zip(enc, dec) for m in pair]
        intermediates = [to_output_fmt(maps[i], "NCHW", output_fmt) for i in take_indices]
        if intermediates_only:
            return intermediates
        return fused, intermediates

    def prune_intermediate_layers(
            self,
            indices: int | Sequence[int] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> list[int]:
        """Drop MFF_OCE and the decoder when only encoder maps (even indices) are needed; returns the indices."""
        take_indices, _ = feature_take_indices(len(self.feature_info), indices)
        if not any(i % 2 for i in take_indices):
            self.mff_oce = None
            self.net_s = None
            self.proj = None
        return take_indices

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``x (B, C, H, W)`` → ``(enc, dec)``, each a list of three NCHW maps, finest first."""
        enc = self.forward_encoder(x)
        return enc, self.forward_decoder(enc)

    # -- task heads ----------------------------------------------------------------------------------------------------
    def loss(self, enc: Sequence[Tensor], dec: Sequence[Tensor]) -> Tensor:
        """Training loss: :func:`mambaad_loss` with ``self.loss_weight`` (MSE ×5 summed over scales)."""
        return mambaad_loss(enc, dec, self.loss_weight)

    @torch.no_grad()
    def anomaly_map(self, enc: Sequence[Tensor], dec: Sequence[Tensor], out_size: int | tuple[int, int]) -> Tensor:
        """``(N, H, W)`` smoothed anomaly maps at ``out_size`` (:func:`mambaad_anomaly_map`, σ = ``gaussian_sigma``)."""
        return mambaad_anomaly_map(enc, dec, out_size, sigma=self.gaussian_sigma)

    @staticmethod
    def anomaly_score(amap: Tensor) -> Tensor:
        """``(N,)`` image scores: the maximum of each smoothed map (:func:`mambaad_anomaly_score`)."""
        return mambaad_anomaly_score(amap)


# ----------------------------------------------------------------------------------------------------------------------
# Official checkpoints


_SCAN_KEYS = ("scans.index_flat", "scans.index_flat_inv")


def _check_scan_index(key: str, value: Tensor, model: nn.Module) -> None:
    """Check an upstream stored scan order against the family the receiving block is configured with."""
    block_path = key.rsplit(".self_attention.", 1)[0]
    try:
        block = model.get_submodule(block_path)
    except AttributeError:
        return  # the key is left to load_state_dict to report
    L = value.numel()
    s = math.isqrt(L)
    if s * s != L or not hasattr(block, "scan"):
        return
    order = scan_order(block.scan, s, s).to(value.device)
    expected = order if key.endswith("index_flat") else torch.argsort(order)
    if not torch.equal(value.reshape(-1).to(torch.int64), expected):
        raise ValueError(
            f"checkpoint key {key!r} stores a scan order that is not the {block.scan!r} order at {s}x{s}; "
            f"the checkpoint was trained with another scan_type: build the model with a matching `scan=`"
        )


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """Turn an official MambaAD / ADer checkpoint into this model's ``state_dict``.

    Works for a whole :class:`MambaAD` (keys ``net_t.*``, ``mff_oce.*``, ``net_s.*``) and for a bare
    :class:`MambaUPNet` (keys ``layers_up.*``):

    - unwraps ADer's ``ckpt.pth`` container (``{'net': state_dict, 'optimizer': …}``) and ``state_dict`` /
      ``model`` containers; strips DDP's ``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes
      (:func:`~vision_ssm.models._checkpoint.clean_checkpoint`);
    - maps ADer's LSS names to MambaAD's (``conv1b3 → conv1b7``, ``conv1a3 → conv1a7``) and drops ADer's
      unused ``conv33`` (:func:`~vision_ssm.layers.lss.remap_lss_state_dict`);
    - checks every stored ``scans.index_flat`` / ``index_flat_inv`` against the receiving block's scan family
      (a mismatch raises ``ValueError``), then replaces it with the model's own buffer (so a checkpoint taken
      at another ``img_size`` loads), or drops it when the model stores no scan index.
    """
    state_dict = remap_lss_state_dict(clean_checkpoint(state_dict))
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k.endswith(_SCAN_KEYS):
            _check_scan_index(k, v, model)
            if k in own:
                out[k] = own[k]
            continue
        out[k] = v
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Registration


def _cfg(url: str = "", **kwargs) -> dict[str, Any]:
    return {
        "url": url,
        "num_classes": 0,
        "input_size": (3, 256, 256),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "net_t.conv1",
        "classifier": None,
        "paper_ids": "arXiv:2404.06564",
        "paper_name": "MambaAD: Exploring State Space Models for Multi-class Unsupervised Anomaly Detection",
        "origin_url": "https://github.com/lewandofskee/MambaAD",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    # No downloadable weights are registered (upstream releases them on Google Drive); load a local file with
    # pretrained=True, pretrained_cfg_overlay=dict(file=PATH).
    "mambaad_resnet34": _cfg(),
    "test_mambaad": _cfg(input_size=(3, 64, 64)),
})


def _create_mambaad(variant: str, pretrained: bool = False, **kwargs) -> MambaAD:
    feature_cls = kwargs.get("feature_cls", "getter")
    if kwargs.get("features_only") and (not isinstance(feature_cls, str) or feature_cls.lower() != "getter"):
        raise ValueError(f"MambaAD: features_only supports feature_cls='getter' only (its maps come from "
                         f"forward_intermediates, not from a chain of child modules), got feature_cls={feature_cls!r}")
    return build_with_weights(
        MambaAD, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3, 4, 5), feature_cls="getter"), **kwargs,
    )


@register_model
def mambaad_resnet34(pretrained: bool = False, **kwargs) -> MambaAD:
    """MambaAD as in every upstream config: frozen ResNet-34 (layers 1–3; ``encoder_pretrained=True`` loads
    torchvision's ImageNet weights, timm tag ``tv_in1k``), MFF_OCE → 512@8², decoder dims (512, 256, 128, 64),
    depths (3, 4, 6, 3), Hilbert scan, 8 directions, d_state 16, drop path 0.2, 256×256 input."""
    model_args = dict(
        encoder="resnet34.tv_in1k", encoder_indices=(1, 2, 3), depths=(3, 4, 6, 3), d_state=16, scan="hilbert",
        num_directions=8, drop_path_rate=0.2, img_size=256,
    )
    return _create_mambaad("mambaad_resnet34", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def test_mambaad(pretrained: bool = False, **kwargs) -> MambaAD:
    """A tiny MambaAD for CI: a ResNet-18-layout encoder with channels (16, 32, 64), decoder dims
    (128, 64, 32, 16), depths (2, 2, 2, 2), d_state 8, Hilbert scan, 8 directions; 64×64 input."""
    model_args = dict(
        encoder="resnet18", encoder_kwargs=dict(channels=(16, 32, 64, 128), stem_width=16),
        depths=(2, 2, 2, 2), d_state=8, scan="hilbert", num_directions=8, drop_path_rate=0.1, img_size=64,
    )
    return _create_mambaad("test_mambaad", pretrained=pretrained, **dict(model_args, **kwargs))

"""Data-driven initialisation of a frozen ResNet encoder that has no pretrained weights.

MambaAD reconstructs the features of a frozen, ImageNet-pretrained ResNet-34. Where no pretrained
weights exist, :func:`init_encoder_layerwise` gives every convolution of the encoder filters learned
from the normal training images alone, greedily, layer by layer, in the spirit of PCANet and of the
PCA "feature learning" filter banks:

1. run the training images through the part of the network that is already initialised;
2. take the next convolution's input patches exactly as it sees them (kernel, stride, padding),
   centre them on their dataset mean and compute the leading eigenvectors of their covariance;
3. the convolution's ``C_out`` filters are the leading eigenvectors in sign pairs ``(+v_1, -v_1,
   +v_2, -v_2, ...)``, so the ReLU that follows keeps both halves of every projection
   (``C_out / 2`` components; beyond twice the patch covariance's rank, seeded random unit
   mixtures of the significant components);
4. the BatchNorm that follows gets the exact mean and variance of the new responses on the sampled
   training patches as running statistics, weight ``(lambda_i / mean lambda)^(p/2)`` (``p =
   gain_power``; 0: every response whitened to unit variance) and bias 0.

Two kinds of filters (``spatial``, per stage):

* ``"pca"``: full ``k x k x C_in`` patches (the patch dimension of a 3x3 convolution is ``9 C_in``);
* ``"pool"``: separable filters ``v_i[c] * w[y, x]``: a fixed binomial window ``w`` (``[1, 2, 1]``
  outer ``[1, 2, 1]`` / 16 for 3x3) times channel directions ``v_i`` from the PCA of the window-averaged
  input. Each convolution then smooths before it projects, so deeper maps are local statistics
  of the responses below (more stable on textures, cheaper to compute). 1x1 convolutions are the
  same in both.

Residual blocks: the shortcut's 1x1 projection (if any) is fitted on the block input; the residual
branch is fitted convolution by convolution on the block input, and its last BatchNorm weight is
multiplied by ``residual_gain``, so a block computes ``relu(shortcut(x) + g * branch(x))``.
The stem (``conv1``, ``bn1``) is fitted on the images.

The encoder is changed in place and left frozen (``requires_grad=False``) and in eval mode.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["calibrate_batchnorm", "init_encoder_layerwise", "init_stem_pca", "pca_filters", "stack_images"]

_SPATIAL = ("pca", "pool")


def stack_images(loader: Iterable[dict], max_images: int, device: torch.device) -> torch.Tensor:
    """Up to ``max_images`` images ``(B, C, H, W)`` fp32 from a loader of ``{"img": ...}`` batches."""
    imgs, n = [], 0
    for batch in loader:
        imgs.append(batch["img"])
        n += len(batch["img"])
        if n >= max_images:
            break
    if not imgs:
        raise ValueError("encoder init: the loader yielded no images")
    x = torch.cat(imgs)[:max_images]
    if x.ndim != 4:
        raise ValueError(f"encoder init: expected (B, C, H, W) images, got shape {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32)


def _sample_patches(conv: nn.Conv2d, x: torch.Tensor, max_patches: int, generator: torch.Generator) -> torch.Tensor:
    """``(N, D)`` float32 input patches of ``conv`` (``D = C_in * kh * kw``), taken exactly as the convolution
    sees them, at most ``ceil(max_patches / B)`` random positions per image."""
    per_image = max(1, math.ceil(max_patches / x.shape[0]))
    out = []
    for i in range(0, x.shape[0], 8):
        p = F.unfold(x[i : i + 8], conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                     stride=conv.stride)  # (b, D, L)
        if p.shape[2] > per_image:
            idx = torch.randperm(p.shape[2], generator=generator)[:per_image].to(p.device)
            p = p.index_select(2, idx)
        out.append(p.transpose(1, 2).reshape(-1, p.shape[1]).float())
    return torch.cat(out)


def _moments(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of the rows of ``p``."""
    mean = p.mean(0)
    pc = p - mean
    cov = (pc.T @ pc).double() / len(p)
    return mean.double(), (cov + cov.T) / 2


def _top_eigh(cov: torch.Tensor, k: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading eigenpairs of a PSD matrix, in descending order: exact (``eigh``) for ``D <= 1024`` or when ``k``
    is close to ``D``, otherwise ``k + 32`` of them by seeded subspace iteration and Rayleigh-Ritz (an exact
    ``eigh`` of a 2304x2304 matrix costs seconds on a small CPU)."""
    d = cov.shape[0]
    q = k + 32
    if d <= 1024 or 2 * q >= d:
        evals, evecs = torch.linalg.eigh(cov)
        return evals.flip(0).clamp_min(0), evecs.flip(1)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    c32 = cov.float()
    basis = torch.linalg.qr(c32 @ torch.randn(d, q, generator=g))[0]
    for _ in range(8):
        basis = torch.linalg.qr(c32 @ basis)[0]
    basis = basis.double()
    evals, small = torch.linalg.eigh(basis.T @ cov @ basis)
    return evals.flip(0).clamp_min(0), (basis @ small).flip(1)


def pca_filters(cov: torch.Tensor, c_out: int, generator: torch.Generator | None = None,
                rel_tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign-paired principal directions of a patch covariance.

    Args:
        cov: ``(D, D)`` symmetric positive semi-definite covariance.
        c_out: number of filters.
        generator: random generator for the filters beyond ``2 x rank`` (random unit mixtures of the
            significant components) and for the subspace iteration of large ``D``.
        rel_tol: eigenvalues below ``rel_tol`` times the largest count as zero.

    Returns:
        ``(filters, variances)``: ``(c_out, D)`` unit-norm filters (float64) ordered ``+v_1, -v_1, +v_2,
        -v_2, ...`` and ``(c_out,)`` the variance of each filter's response under ``cov``.

    Raises:
        ValueError: ``cov`` is not square, ``c_out < 1``, or ``cov`` is zero.
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be square (D, D), got {tuple(cov.shape)}")
    if c_out < 1:
        raise ValueError(f"c_out must be >= 1, got {c_out}")
    cov = cov.double()
    evals, evecs = _top_eigh(cov, (c_out + 1) // 2, generator)
    if not evals[0] > 0:
        raise ValueError("the patches have no variance: cannot derive filters")
    rank = int((evals > evals[0] * rel_tol).sum())
    n_pairs = min((c_out + 1) // 2, rank)
    v = evecs[:, :n_pairs].T  # (n_pairs, D)
    filters = torch.stack([v, -v], 1).reshape(-1, v.shape[1])[:c_out]
    var = evals[:n_pairs].repeat_interleave(2)[:c_out]
    extra = c_out - filters.shape[0]
    if extra > 0:  # more filters than 2 x rank: random unit mixtures of the significant components
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        mix = torch.randn(extra, rank, generator=g, dtype=torch.float64)
        mix = mix / mix.norm(dim=1, keepdim=True)
        filters = torch.cat([filters, mix @ evecs[:, :rank].T])
        var = torch.cat([var, (mix**2) @ evals[:rank]])
    return filters, var


def _binomial(k: int) -> torch.Tensor:
    """Normalised binomial window of length ``k`` (``[1, 2, 1] / 4`` for 3)."""
    return torch.tensor([math.comb(k - 1, i) for i in range(k)], dtype=torch.float64) / 2 ** (k - 1)


def _set_bn(bn: nn.BatchNorm2d | None, mean: torch.Tensor, var: torch.Tensor, gain_power: float, scale: float) -> None:
    if bn is None:
        return
    bn.running_mean.copy_(mean.to(bn.running_mean))
    bn.running_var.copy_(var.clamp_min(1e-12).to(bn.running_var))
    bn.num_batches_tracked.zero_()
    if bn.affine:
        gain = (var / var.mean()).clamp_min(1e-12) ** (gain_power / 2)
        bn.weight.copy_((scale * gain).to(bn.weight))
        bn.bias.zero_()


@torch.no_grad()
def _fit_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, x: torch.Tensor, *, scale: float, spatial: str,
                 gain_power: float, max_patches: int, generator: torch.Generator) -> None:
    """Set ``conv`` to PCA filters of its input ``x`` and ``bn`` to the exact statistics of the responses."""
    if conv.groups != 1:
        raise ValueError("init_encoder_layerwise supports ungrouped convolutions only")
    kh, kw = conv.kernel_size
    if spatial == "pool" and kh * kw > 1:
        win = torch.outer(_binomial(kh), _binomial(kw))
        c_in = x.shape[1]
        xs = F.conv2d(x, win.to(x).expand(c_in, 1, kh, kw), stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=c_in)
        patches = xs.permute(0, 2, 3, 1).reshape(-1, c_in)
        if len(patches) > max_patches:
            patches = patches[torch.randperm(len(patches), generator=generator)[:max_patches].to(x.device)]
        mean, cov = _moments(patches)
        v, var = pca_filters(cov, conv.out_channels, generator)
        filters = v[:, :, None, None] * win.to(v)
    else:
        mean, cov = _moments(_sample_patches(conv, x, max_patches, generator))
        filters, var = pca_filters(cov, conv.out_channels, generator)
        v = filters
    conv.weight.copy_(filters.reshape(conv.weight.shape).to(conv.weight))
    if conv.bias is not None:
        conv.bias.zero_()
    _set_bn(bn, v @ mean, var, gain_power, scale)


def _block_kind(block: nn.Module) -> str:
    names = {n for n, _ in block.named_children()}
    if {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"} <= names:
        return "bottleneck"
    if {"conv1", "bn1", "conv2", "bn2"} <= names:
        return "basic"
    raise ValueError(f"init_encoder_layerwise: unsupported block {type(block).__name__} "
                     "(expected a timm ResNet BasicBlock or Bottleneck)")


@torch.no_grad()
def _init_block(block: nn.Module, x: torch.Tensor, residual_gain: float, **kw) -> None:
    kind = _block_kind(block)
    if block.downsample is not None:
        convs = [m for m in block.downsample.modules() if isinstance(m, nn.Conv2d)]
        bns = [m for m in block.downsample.modules() if isinstance(m, nn.BatchNorm2d)]
        if len(convs) != 1 or len(bns) > 1:
            raise ValueError("init_encoder_layerwise: the shortcut must be one conv (+ BatchNorm)")
        pre = x
        for m in block.downsample:  # e.g. an average pool before the 1x1 conv (ResNet-D)
            if m is convs[0]:
                break
            pre = m(pre)
        _fit_conv_bn(convs[0], bns[0] if bns else None, pre, scale=1.0, **kw)
    names = ["1", "2", "3"] if kind == "bottleneck" else ["1", "2"]
    h = x
    for k in names:
        conv, bn = getattr(block, f"conv{k}"), getattr(block, f"bn{k}")
        last = k == names[-1]
        _fit_conv_bn(conv, bn, h, scale=residual_gain if last else 1.0, **kw)
        if last:
            break
        h = bn(conv(h))
        if kind == "basic":  # conv1 -> bn1 -> drop_block -> act1 -> aa
            h = block.aa(block.act1(block.drop_block(h)))
        elif k == "1":  # bottleneck: conv1 -> bn1 -> act1
            h = block.act1(h)
        else:  # conv2 -> bn2 -> drop_block -> act2 -> aa
            h = block.aa(block.act2(block.drop_block(h)))


def _per_stage(value, n: int, name: str) -> list:
    vals = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value] * n
    if len(vals) != n:
        raise ValueError(f"{name}: expected one value or {n} (stem + {n - 1} stages), got {len(vals)}")
    return vals


@torch.no_grad()
def init_encoder_layerwise(encoder: nn.Module, loader: Iterable[dict], device: torch.device | str = "cpu", *,
                           spatial: str | Sequence[str] = "pca", gain_power: float | Sequence[float] = 0.0,
                           residual_gain: float | Sequence[float] = 1.0, max_images: int = 144,
                           max_patches: int = 40000, seed: int = 0) -> nn.Module:
    """Greedy layer-wise PCA initialisation of a timm ResNet trunk (e.g. a ``features_only`` encoder), in place.

    Args:
        encoder: a timm ResNet trunk with ``conv1``/``bn1``/``act1``/``maxpool`` and ``layer1..layerN``
            (a ``features_only=True`` model keeps only the stages it returns; all of them are initialised).
        loader: iterable of dicts with ``"img"``: ``(B, C, H, W)`` normal training images, normalised as the
            model sees them.
        device: device to compute on.
        spatial: ``"pca"`` (full-patch PCA filters) or ``"pool"`` (binomial window x channel PCA) for the
            convolutions of every stage (the stem then uses ``"pca"``), or one value per stage as
            ``(stem, layer1, layer2, ...)``.
        gain_power: BatchNorm weight ``(lambda_i / mean lambda)^(p/2)``: 0 = responses whitened, 1 = they keep
            the relative variance of their principal component; one value or per stage.
        residual_gain: weight of each residual branch relative to its shortcut; one value or per stage
            (the stem's entry is unused).
        max_images: images taken from ``loader``.
        max_patches: patches (positions) per convolution entering its covariance.
        seed: seed of the patch sampling (the result is deterministic for fixed inputs).

    Returns:
        ``encoder`` (modified in place), frozen and in eval mode.

    Raises:
        ValueError: not a plain-stem timm ResNet with BasicBlock/Bottleneck stages, grouped convolutions, a
            bad ``spatial`` value, an empty loader or images that are not ``(B, C, H, W)``.
    """
    for name in ("conv1", "bn1", "act1", "maxpool"):
        if not hasattr(encoder, name):
            raise ValueError(f"init_encoder_layerwise expects a timm ResNet trunk; {type(encoder).__name__} has no "
                             f"{name!r}")
    if not isinstance(encoder.conv1, nn.Conv2d):
        raise ValueError("init_encoder_layerwise: deep stems (a Sequential conv1) are not supported")
    stages = [getattr(encoder, f"layer{i}") for i in range(1, 5) if hasattr(encoder, f"layer{i}")]
    for stage in stages:
        for block in stage:
            _block_kind(block)
    n = len(stages) + 1
    if isinstance(spatial, str):
        spatial = ["pca"] + [spatial] * (n - 1)  # the stem's filters come from the image patches
    spatial = _per_stage(spatial, n, "spatial")
    if any(s not in _SPATIAL for s in spatial):
        raise ValueError(f"spatial must be in {_SPATIAL}, got {spatial}")
    gain_power = _per_stage(gain_power, n, "gain_power")
    residual_gain = _per_stage(residual_gain, n, "residual_gain")
    device = torch.device(device)
    encoder.to(device).eval()
    g = torch.Generator().manual_seed(seed)

    def kw(i: int) -> dict:
        return dict(spatial=spatial[i], gain_power=gain_power[i], max_patches=max_patches, generator=g)

    x = stack_images(loader, max_images, device)
    _fit_conv_bn(encoder.conv1, encoder.bn1, x, scale=1.0, **kw(0))
    x = encoder.maxpool(encoder.act1(encoder.bn1(encoder.conv1(x))))
    for i, stage in enumerate(stages, 1):
        for block in stage:
            _init_block(block, x, residual_gain[i], **kw(i))
            x = block(x)
    encoder.requires_grad_(False)
    return encoder.eval()


@torch.no_grad()
def calibrate_batchnorm(module: torch.nn.Module, loader: Iterable[dict], device: torch.device,
                        max_batches: int = 8) -> None:
    """Re-estimate the BatchNorm running statistics of a frozen module on training images.

    The module's weights are not changed; afterwards it is back in eval mode.
    """
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    module.train()
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        module(batch["img"].to(device))
    module.eval()


@torch.no_grad()
def init_stem_pca(module: torch.nn.Module, loader: Iterable[dict], device: torch.device, max_images: int = 64) -> None:
    """Set the first convolution's filters to the whitened principal components of training patches.

    A download-free, data-driven initialisation for a frozen encoder without pretrained weights
    (the classic "PCA filter bank" of unsupervised feature learning): patches of the first conv's
    size are taken from up to ``max_images`` training images, mean-centred per patch, and the
    filters become the leading eigenvectors of their covariance divided by the square root of their
    eigenvalues. Filters beyond the patch dimension keep their random values.
    """
    conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    c_out, c_in, kh, kw = conv.weight.shape
    x = stack_images(loader, max_images, conv.weight.device)
    patches = F.unfold(x, (kh, kw), stride=max(1, kh // 2)).transpose(1, 2).reshape(-1, c_in * kh * kw)
    patches = patches - patches.mean(1, keepdim=True)
    cov = patches.T @ patches / len(patches)
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    k = min(c_out, int((evals > evals[0] * 1e-6).sum()))
    w = conv.weight.detach().clone().reshape(c_out, -1)
    w[:k] = (evecs[:, :k] / (evals[:k].sqrt() + 1e-3)).T
    conv.weight.copy_(w.reshape(conv.weight.shape))

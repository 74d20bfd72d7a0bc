"""Data-driven initialisation of a frozen ResNet encoder that has no pretrained weights.

MambaAD reconstructs the features of a frozen, ImageNet-pretrained ResNet-34. Where no pretrained
weights exist, :func:`init_encoder_layerwise` gives every convolution of the encoder (up to the
last stage it is asked for) filters learned from the normal training images alone, greedily, layer
by layer, in the spirit of PCANet and of k-means/PCA "feature learning" filter banks:

1. run the training images through the part of the network that is already initialised;
2. take all ``k x k x C_in`` input patches of the next convolution (its own kernel, stride,
   padding), centred on their dataset mean, and their covariance's eigenvectors;
3. the convolution's ``C_out`` filters are the leading eigenvectors in sign pairs ``(+v_i, -v_i)``,
   so that the ReLU that follows keeps both halves of every projection (``C_out / 2`` components);
4. the BatchNorm that follows gets the exact mean and variance of the new responses on the training
   patches (running statistics), weight ``(lambda_i / mean lambda)^(p/2)`` (``p = 0``: whitened) and
   bias 0.

Residual blocks: the shortcut's 1x1 projection (if any) is a PCA of its input as above; the
residual branch is fitted on the block's own input and added with weight ``residual_gain`` (the
last BatchNorm's weight), so a block computes ``relu(shortcut(x) + g * branch(x))``.

The module only sets weights and BatchNorm statistics; it stays frozen and in eval mode.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["init_encoder_layerwise", "kmeans_filters", "pca_filters"]


def _stack_images(loader: Iterable[dict], max_images: int, device: torch.device) -> torch.Tensor:
    imgs, n = [], 0
    for batch in loader:
        imgs.append(batch["img"])
        n += len(batch["img"])
        if n >= max_images:
            break
    if not imgs:
        raise ValueError("init_encoder_layerwise: the loader yielded no images")
    x = torch.cat(imgs)[:max_images]
    if x.ndim != 4:
        raise ValueError(f"init_encoder_layerwise: expected (B, C, H, W) images, got shape {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32)


def _sample_patches(conv: nn.Conv2d, x: torch.Tensor, max_patches: int, generator: torch.Generator) -> torch.Tensor:
    """``(N, D)`` float32 input patches of ``conv`` (``D = C_in * kh * kw``), taken exactly as the convolution
    sees them (kernel, stride, padding, dilation), at most ``max_patches`` at random positions."""
    if conv.groups != 1:
        raise ValueError("init_encoder_layerwise supports ungrouped convolutions only")
    n = x.shape[0]
    per_image = max(1, math.ceil(max_patches / n))
    out = []
    for i in range(0, n, 8):
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
    """Leading eigenpairs of a PSD matrix, descending: exact (``eigh``) for ``D <= 1024`` or when ``k`` is
    close to ``D``, otherwise ``k + 32`` directions by seeded subspace iteration and Rayleigh-Ritz (the
    exact ``eigh`` of a 2304x2304 matrix costs seconds on a small CPU)."""
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
                rel_tol: float = 1e-6, energy: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign-paired principal directions of a patch covariance.

    Args:
        cov: ``(D, D)`` symmetric covariance.
        c_out: number of filters.
        generator: random generator for the filters beyond ``2 x rank`` (random unit combinations of
            the significant components); unused otherwise.
        rel_tol: eigenvalues below ``rel_tol`` times the largest count as zero.

    Returns:
        ``(filters, variances)``: ``(c_out, D)`` unit-norm filters ordered ``+v_1, -v_1, +v_2, -v_2, ...``
        and ``(c_out,)`` the variance of each filter's response.
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be square (D, D), got {tuple(cov.shape)}")
    if c_out < 1:
        raise ValueError(f"c_out must be >= 1, got {c_out}")
    evals, evecs = _top_eigh(cov.double(), (c_out + 1) // 2, generator)
    if not evals[0] > 0:
        raise ValueError("the patches have no variance: cannot derive filters")
    rank = int((evals > evals[0] * rel_tol).sum())
    if energy < 1.0:  # keep the leading components that explain this fraction of the variance
        frac = evals.cumsum(0) / cov.diagonal().sum().clamp_min(1e-300)
        rank = max(1, min(rank, int((frac < energy).sum()) + 1))
    n_pairs = min((c_out + 1) // 2, rank)
    v = evecs[:, :n_pairs].T  # (n_pairs, D)
    lam = evals[:n_pairs]
    filters = torch.stack([v, -v], 1).reshape(-1, v.shape[1])[:c_out]
    var = lam.repeat_interleave(2)[:c_out]
    extra = c_out - filters.shape[0]
    if extra > 0:  # more filters than 2 x rank: random unit mixtures of the significant components
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        mix = torch.randn(extra, rank, generator=g, dtype=torch.float64)
        mix = mix / mix.norm(dim=1, keepdim=True)
        filters = torch.cat([filters, mix @ evecs[:, :rank].T])
        var = torch.cat([var, (mix**2) @ evals[:rank]])
    return filters, var


def kmeans_filters(patches: torch.Tensor, c_out: int, generator: torch.Generator | None = None, *,
                   whiten_eps: float = 0.1, iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means filters of whitened patches (Coates & Ng's single-layer feature learning).

    The patches are centred, projected on their leading ``min(D, 2 c_out)`` principal components and
    whitened with a regulariser ``whiten_eps x (mean eigenvalue)``; ``c_out`` unit centroids are found by
    spherical k-means (``iters`` rounds, seeded init from the data), and mapped back to patch space,
    so ``filter_k . (p - mean)`` is the (whitened) similarity of a patch to centroid ``k``.

    Args:
        patches: ``(N, D)`` patches, ``N >= c_out``.
        c_out: number of filters.
        generator: random generator (centroid init).
        whiten_eps: whitening regulariser relative to the mean eigenvalue.
        iters: k-means rounds.

    Returns:
        ``(filters, variances)``: ``(c_out, D)`` filters and ``(c_out,)`` the variance of their responses.
    """
    if patches.ndim != 2 or len(patches) < c_out:
        raise ValueError(f"kmeans_filters needs (N >= c_out, D) patches, got {tuple(patches.shape)} for c_out={c_out}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    mean, cov = _moments(patches)
    d = cov.shape[0]
    evals, evecs = _top_eigh(cov, min(d, 2 * c_out), g)
    r = min(d, 2 * c_out, len(evals))
    if not evals[0] > 0:
        raise ValueError("the patches have no variance: cannot derive filters")
    evals, evecs = evals[:r], evecs[:, :r]
    eps = whiten_eps * float(cov.diagonal().mean())
    proj = (evecs / (evals + eps).sqrt()).float()  # (D, r): centred patch -> whitened coordinates
    z = F.normalize((patches - mean.float()) @ proj, dim=1)
    cent = z[torch.randperm(len(z), generator=g)[:c_out]].clone()
    for _ in range(iters):
        assign = (z @ cent.T).argmax(1)
        new = torch.zeros_like(cent).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=c_out)
        empty = counts == 0
        if empty.any():  # re-seed empty clusters with random patches
            new[empty] = z[torch.randint(len(z), (int(empty.sum()),), generator=g)]
        cent = F.normalize(new, dim=1)
    filters = cent.double() @ proj.double().T  # (c_out, D)
    var = ((filters @ cov) * filters).sum(1)
    return filters, var


@torch.no_grad()
def _fit_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, x: torch.Tensor, *, max_patches: int,
                 gain_power: float, scale: float, shift: float, method: str, energy: float,
                 generator: torch.Generator) -> None:
    """Set ``conv`` to filters learned from its input ``x`` and ``bn`` to the exact statistics of the responses
    (weight ``scale x gain``, bias ``-shift``)."""
    patches = _sample_patches(conv, x, max_patches, generator)
    if method == "pca":
        mean, cov = _moments(patches)
        filters, var = pca_filters(cov, conv.out_channels, generator, energy=energy)
    else:
        mean = patches.mean(0).double()
        filters, var = kmeans_filters(patches, conv.out_channels, generator)
    conv.weight.copy_(filters.reshape(conv.weight.shape).to(conv.weight))
    if conv.bias is not None:
        conv.bias.zero_()
    if bn is None:
        return
    bn.running_mean.copy_((filters @ mean).to(bn.running_mean))
    bn.running_var.copy_(var.clamp_min(1e-12).to(bn.running_var))
    bn.num_batches_tracked.zero_()
    if bn.affine:
        gain = (var / var.mean()).clamp_min(1e-12) ** (gain_power / 2)
        bn.weight.copy_((scale * gain).to(bn.weight))
        bn.bias.fill_(-shift * scale)


def _check_block(block: nn.Module) -> str:
    names = {n for n, _ in block.named_children()}
    if {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"} <= names:
        return "bottleneck"
    if {"conv1", "bn1", "conv2", "bn2"} <= names:
        return "basic"
    raise ValueError(f"init_encoder_layerwise: unsupported block {type(block).__name__} (ResNet BasicBlock/Bottleneck)")


@torch.no_grad()
def _init_block(block: nn.Module, x: torch.Tensor, residual_gain: float, threshold: float, **kw) -> None:
    kind = _check_block(block)
    if block.downsample is not None:
        ds = block.downsample
        convs = [m for m in ds.modules() if isinstance(m, nn.Conv2d)]
        bns = [m for m in ds.modules() if isinstance(m, nn.BatchNorm2d)]
        if len(convs) != 1 or len(bns) > 1:
            raise ValueError("init_encoder_layerwise: the shortcut must be one conv (+ BatchNorm)")
        pre = x
        for m in ds:  # e.g. an average pool before the 1x1 conv (ResNet-D)
            if m is convs[0]:
                break
            pre = m(pre)
        _fit_conv_bn(convs[0], bns[0] if bns else None, pre, scale=1.0, shift=0.0, **kw)
    layers = ["1", "2", "3"] if kind == "bottleneck" else ["1", "2"]
    h = x
    for i, k in enumerate(layers):
        conv, bn = getattr(block, f"conv{k}"), getattr(block, f"bn{k}")
        last = i == len(layers) - 1
        _fit_conv_bn(conv, bn, h, scale=residual_gain if last else 1.0, shift=0.0 if last else threshold, **kw)
        if last:
            break
        h = bn(conv(h))
        if kind == "basic":  # conv1 -> bn1 -> drop_block -> act1 -> aa
            h = block.aa(block.act1(block.drop_block(h)))
        elif k == "1":  # bottleneck: conv1 -> bn1 -> act1
            h = block.act1(h)
        else:  # conv2 -> bn2 -> drop_block -> act2 -> aa
            h = block.aa(block.act2(block.drop_block(h)))


@torch.no_grad()
def init_encoder_layerwise(encoder: nn.Module, loader: Iterable[dict], device: torch.device | str = "cpu", *,
                           max_images: int = 144, max_patches: int = 40000, gain_power: float = 0.0,
                           residual_gain: float = 1.0, method: str = "pca", threshold: float = 0.0,
                           energy: float = 1.0, seed: int = 0) -> nn.Module:
    """Greedy layer-wise PCA initialisation of a timm ResNet (``features_only``) encoder, in place.

    Args:
        encoder: a timm ResNet trunk with ``conv1``/``bn1``/``act1``/``maxpool`` and ``layer1..layerN``
            (a ``FeatureListNet`` of ``features_only=True`` keeps only the stages it returns; all are
            initialised).
        loader: iterable of dicts with ``"img"`` ``(B, C, H, W)`` normal training images, normalised as
            the model sees them.
        device: device to compute on.
        max_images: images taken from ``loader``.
        max_patches: patches per convolution entering its covariance.
        gain_power: BatchNorm weight ``(lambda_i / mean lambda)^(p/2)``: 0 = whitened responses, 1 =
            responses keep the relative variance of their principal component.
        residual_gain: weight of each residual branch relative to its shortcut.
        seed: seed of the patch sampling (the result is deterministic for fixed inputs).

    Returns:
        ``encoder`` (modified in place), frozen (``requires_grad=False``) and in eval mode.
    """
    for name in ("conv1", "bn1", "act1", "maxpool"):
        if not hasattr(encoder, name):
            raise ValueError(f"init_encoder_layerwise expects a timm ResNet trunk; {type(encoder).__name__} has no "
                             f"{name!r}")
    if not isinstance(encoder.conv1, nn.Conv2d):
        raise ValueError("init_encoder_layerwise: deep stems (Sequential conv1) are not supported")
    stages = [getattr(encoder, f"layer{i}") for i in range(1, 5) if hasattr(encoder, f"layer{i}")]
    for stage in stages:
        for block in stage:
            _check_block(block)
    device = torch.device(device)
    encoder.to(device).eval()
    g = torch.Generator().manual_seed(seed)
    if method not in ("pca", "kmeans"):
        raise ValueError(f"method must be 'pca' or 'kmeans', got {method!r}")
    def at(v, i):
        return v[i] if isinstance(v, (list, tuple)) else v

    def kw(i):
        return dict(max_patches=max_patches, gain_power=at(gain_power, i), method=method, energy=at(energy, i),
                    generator=g)

    x = _stack_images(loader, max_images, device)
    _fit_conv_bn(encoder.conv1, encoder.bn1, x, scale=1.0, shift=at(threshold, 0), **kw(0))
    x = encoder.maxpool(encoder.act1(encoder.bn1(encoder.conv1(x))))
    for i, stage in enumerate(stages, 1):
        for block in stage:
            _init_block(block, x, at(residual_gain, i), at(threshold, i), **kw(i))
            x = block(x)
    encoder.requires_grad_(False)
    return encoder.eval()

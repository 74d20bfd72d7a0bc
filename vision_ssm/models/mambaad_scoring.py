"""MambaAD's loss, anomaly map and image score (``anomaly.md`` §3, §5), as plain functions on feature pyramids.

The model class (:class:`~vision_ssm.models.MambaAD`) calls these; they are also usable on any
encoder/decoder pair of feature lists (``(N, C_i, h_i, w_i)`` each).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_filter2d", "mambaad_anomaly_map", "mambaad_anomaly_score", "mambaad_loss"]



def mambaad_loss(enc: Sequence[Tensor], dec: Sequence[Tensor], weight: float = 5.0) -> Tensor:
    """MambaAD's training loss (ADer ``L2Loss``, λ = 5): ``Σ_i weight · mean((enc_i − dec_i)²)``, in fp32."""
    return sum(weight * F.mse_loss(d.float(), e.float()) for e, d in zip(enc, dec))


def _reflect_index(n: int, radius: int, device) -> Tensor:
    """Indices of a 1-D signal of length ``n`` padded by ``radius`` on both sides in scipy's ``'reflect'``
    mode (``d c b a | a b c d | d c b a``, period ``2n``)."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def gaussian_filter2d(x: Tensor, sigma: float = 4.0, truncate: float = 4.0) -> Tensor:
    """``scipy.ndimage.gaussian_filter(x[i], sigma)`` for every map of a batch, in torch.

    Same kernel (radius ``int(truncate·sigma + 0.5)``, normalised ``exp(−t²/2σ²)``), same boundary
    (``'reflect'``), separable over H then W, computed in ``x``'s dtype (fp32 maps agree with SciPy to
    float rounding).

    Args:
        x: ``(N, H, W)`` maps.
        sigma: Standard deviation in pixels; ``0`` returns ``x``.
        truncate: Kernel radius in standard deviations.

    Returns:
        ``(N, H, W)``.
    """
    if sigma <= 0:
        return x
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float64)
    k = torch.exp(-0.5 / float(sigma) ** 2 * t**2)
    k = (k / k.sum()).to(x.dtype)
    N, H, W = x.shape
    y = x.index_select(1, _reflect_index(H, radius, x.device)).unsqueeze(1)  # (N, 1, H+2r, W)
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    y = y.index_select(3, _reflect_index(W, radius, x.device))
    return F.conv2d(y, k.view(1, 1, 1, -1)).squeeze(1)


def mambaad_anomaly_map(
    enc: Sequence[Tensor],
    dec: Sequence[Tensor],
    out_size: int | tuple[int, int],
    weights: Sequence[float] | None = None,
    sigma: float = 4.0,
) -> Tensor:
    """ADer's ``cal_anomaly_map`` (``use_cos=True``, ``amap_mode='add'``) followed by Gaussian smoothing.

    Per scale ``i``: ``a_i = 1 − cos(enc_i, dec_i)`` over channels, bilinearly resized to ``out_size``
    with ``align_corners=True``; ``amap = Σ_i w_i·a_i / (n_scales · Σ_i w_i)`` (with unit weights and
    three scales: the sum divided by 9, i.e. the mean over scales / 3, a monotone rescaling kept for
    parity with upstream); then :func:`gaussian_filter2d` with ``sigma`` (upstream 4).

    Args:
        enc: Encoder maps ``(N, C_i, h_i, w_i)``.
        dec: Decoder maps, same shapes.
        out_size: Output ``H`` (square) or ``(H, W)``.
        weights: Per-scale weights (default all 1).
        sigma: Gaussian sigma in pixels (0: no smoothing).

    Returns:
        ``(N, H, W)`` float32 anomaly maps (higher = more anomalous).
    """
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    weights = [1.0] * len(enc) if weights is None else list(weights)
    amap = None
    for e, d, w in zip(enc, dec, weights):
        a = 1.0 - F.cosine_similarity(e.float(), d.float(), dim=1)
        a = F.interpolate(a.unsqueeze(1), size=size, mode="bilinear", align_corners=True).squeeze(1)
        amap = a * w if amap is None else amap + a * w
    amap = amap / (len(enc) * sum(weights))
    return gaussian_filter2d(amap, sigma)


def mambaad_anomaly_score(amap: Tensor, pooling_ks: int | None = None) -> Tensor:
    """Image score: the maximum of the (smoothed) map ``(N, H, W)`` → ``(N,)``; with ``pooling_ks`` the map
    is first average-pooled (stride 1), as ADer's ``pooling_ks`` option (unset in every MambaAD config)."""
    if pooling_ks:
        amap = F.avg_pool2d(amap.unsqueeze(1), pooling_ks, stride=1).squeeze(1)
    return amap.flatten(1).amax(dim=1)

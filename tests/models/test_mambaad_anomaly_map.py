"""MambaAD loss, anomaly map and image score against direct NumPy / SciPy computations (anomaly.md §3, §5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from vision_ssm.models.mambaad import (
    gaussian_filter2d,
    mambaad_anomaly_map,
    mambaad_anomaly_score,
    mambaad_loss,
)


def _features(seed: int, n: int = 2, scales=((8, 16), (16, 8), (32, 4))):
    g = torch.Generator().manual_seed(seed)
    enc = [torch.randn(n, c, s, s, generator=g) for c, s in scales]
    dec = [e + 0.7 * torch.randn(e.shape, generator=g) for e in enc]
    return enc, dec


def _numpy_amap(enc, dec, out: int, sigma: float) -> np.ndarray:
    """ADer's cal_anomaly_map written out: cosine distance, bilinear (align_corners) resize, /(n·Σw), gaussian."""
    total = np.zeros((enc[0].shape[0], out, out))
    for e, d in zip(enc, dec):
        e, d = e.double().numpy(), d.double().numpy()
        cos = (e * d).sum(1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(d, axis=1))
        h, w = cos.shape[1:]
        yy, xx = np.meshgrid(np.linspace(0, h - 1, out), np.linspace(0, w - 1, out), indexing="ij")
        for i in range(cos.shape[0]):
            total[i] += ndimage.map_coordinates(1.0 - cos[i], [yy, xx], order=1, mode="nearest")
    total /= len(enc) * len(enc)  # weights [1, 1, 1]: n_scales · Σw = 9
    return np.stack([ndimage.gaussian_filter(a, sigma=sigma) for a in total])


@pytest.mark.parametrize("out,sigma", [(64, 4.0), (48, 2.5)])
def test_anomaly_map_matches_scipy(out, sigma):
    enc, dec = _features(0)
    amap = mambaad_anomaly_map(enc, dec, out, sigma=sigma)
    ref = _numpy_amap(enc, dec, out, sigma)
    assert amap.shape == (2, out, out) and amap.dtype == torch.float32
    np.testing.assert_allclose(amap.numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    score = mambaad_anomaly_score(amap)
    np.testing.assert_allclose(score.numpy(), ref.reshape(2, -1).max(1), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 40, 37), (2, 7, 12), (1, 1, 5)])
def test_gaussian_filter_matches_scipy_including_short_axes(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = np.stack([ndimage.gaussian_filter(a, sigma=4.0) for a in x.numpy()])  # radius 16 > 12: multi-reflection
    np.testing.assert_allclose(gaussian_filter2d(x, 4.0).numpy(), ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(gaussian_filter2d(x, 0.0), x)


def test_anomaly_score_pooling_matches_sliding_mean():
    amap = torch.rand(2, 9, 9, generator=torch.Generator().manual_seed(3))
    a = amap.numpy()
    windows = np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(1, 2)).mean((-1, -2))
    np.testing.assert_allclose(mambaad_anomaly_score(amap, pooling_ks=3).numpy(), windows.reshape(2, -1).max(1),
                               rtol=1e-6)


def test_identical_features_give_zero_map_and_loss():
    enc, _ = _features(4)
    assert mambaad_anomaly_map(enc, enc, 32).abs().max() < 1e-6
    assert mambaad_loss(enc, enc) == 0


def test_loss_is_five_times_mse_summed_over_scales():
    enc, dec = _features(5)
    ref = sum(5.0 * np.mean((e.double().numpy() - d.double().numpy()) ** 2) for e, d in zip(enc, dec))
    np.testing.assert_allclose(mambaad_loss(enc, dec).item(), ref, rtol=1e-6)
    np.testing.assert_allclose(mambaad_loss(enc, dec, weight=1.0).item(), ref / 5, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), sigma=st.floats(0.3, 6.0), truncate=st.sampled_from([2.0, 4.0]),
)
def test_gaussian_filter_property_matches_scipy(h, w, sigma, truncate):
    x = torch.rand(2, h, w, generator=torch.Generator().manual_seed(h * 41 + w), dtype=torch.float64)
    ref = np.stack([ndimage.gaussian_filter(a, sigma=sigma, truncate=truncate) for a in x.numpy()])
    np.testing.assert_allclose(gaussian_filter2d(x, sigma, truncate).numpy(), ref, rtol=1e-12, atol=1e-12)

"""The data-driven init of a weightless encoder (``vision_ssm.tasks.encoder_init``)."""
import pytest
import timm
import torch
from torch import nn

import vision_ssm.models  # noqa: F401  (registers test_mambaad)
from vision_ssm.tasks.encoder_init import init_encoder_layerwise, pca_filters


def _images(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    gray = torch.randn(n, 1, size, size, generator=g).cumsum(-1).cumsum(-2) / size  # smooth, correlated pixels
    x = gray.expand(n, 3, size, size) + 0.1 * torch.randn(n, 3, size, size, generator=g)
    return [{"img": x[i : i + 4]} for i in range(0, n, 4)]


def _encoder(seed=0):
    torch.manual_seed(seed)
    return timm.create_model("test_mambaad", pretrained=False).net_t


def _random_cov(d, rank=None, seed=0):
    """A random covariance with a decaying spectrum (as patch covariances have) and the given rank."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    lam = 1.0 / torch.arange(1, d + 1, dtype=torch.float64) ** 1.5
    lam[rank or d :] = 0
    return (q * lam) @ q.T, lam


@pytest.mark.parametrize("d,c_out", [(9, 8), (40, 16), (1100, 32)])  # 1200: subspace-iteration path
def test_pca_filters_are_sign_paired_orthonormal_principal_directions(d, c_out):
    cov, lam = _random_cov(d)
    f, var = pca_filters(cov, c_out, torch.Generator().manual_seed(0))
    assert f.shape == (c_out, d) and var.shape == (c_out,)
    torch.testing.assert_close(f[0::2], -f[1::2])
    v = f[0::2]
    torch.testing.assert_close(v @ v.T, torch.eye(c_out // 2, dtype=v.dtype), atol=1e-6, rtol=0)
    torch.testing.assert_close(var, ((f @ cov) * f).sum(1), atol=1e-8, rtol=1e-5)
    assert torch.all(var[0::2][:-1] >= var[0::2][1:] - 1e-9)  # descending
    torch.testing.assert_close(var[0::2], lam[: c_out // 2], atol=1e-6, rtol=1e-4)


def test_pca_filters_beyond_the_rank_mix_significant_components():
    cov, _ = _random_cov(12, rank=3)
    f, var = pca_filters(cov, 10)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(10, dtype=f.dtype))
    _, evecs = torch.linalg.eigh(cov)
    null = evecs[:, :9]  # the 9 zero-variance directions
    assert (f @ null).abs().max() < 1e-8
    assert torch.all(var > 0)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.zeros(4, 4)])
def test_pca_filters_rejects_bad_covariances(bad):
    with pytest.raises(ValueError):
        pca_filters(bad, 4)
    with pytest.raises(ValueError, match="c_out"):
        pca_filters(torch.eye(4), 0)


@pytest.mark.parametrize("spatial", ["pca", "pool"])
def test_layerwise_init_is_deterministic_frozen_and_calibrated(spatial):
    encs = [init_encoder_layerwise(_encoder(seed=s), _images(), spatial=spatial, seed=3) for s in (0, 1)]
    a, b = (e.state_dict() for e in encs)
    for k in a:  # different random starts, same data-driven result
        torch.testing.assert_close(a[k], b[k], msg=k)
    enc = encs[0]
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    # the stem's BatchNorm holds the exact statistics of its responses: normalised outputs on the same images
    x = torch.cat([d["img"] for d in _images()])
    z = enc.bn1(enc.conv1(x))
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(z.shape[1]), atol=0.05, rtol=0)
    torch.testing.assert_close(z.var((0, 2, 3)), torch.ones(z.shape[1]), atol=0.1, rtol=0)
    w = enc.conv1.weight.reshape(enc.conv1.out_channels, -1)
    torch.testing.assert_close(w[0::2][:8], -w[1::2][:8])
    conv = enc.layer2[1].conv1
    if spatial == "pool":  # separable: channel direction times one fixed window
        win_shape = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4
        torch.testing.assert_close(conv.weight, conv.weight[:, :, 1:2, 1:2] * win_shape, atol=1e-6, rtol=1e-5)
        v = conv.weight[:, :, 1, 1][0::2]
        torch.testing.assert_close(v @ v.T / v.norm(dim=1).square().mean(), torch.eye(len(v)), atol=1e-4, rtol=0)
    else:
        v = conv.weight.reshape(conv.out_channels, -1)[0::2]
        torch.testing.assert_close(v @ v.T, torch.eye(len(v)), atol=1e-4, rtol=0)


def test_layerwise_init_in_a_mambaad_model_keeps_the_encoder_frozen():
    model = timm.create_model("test_mambaad", pretrained=False)
    init_encoder_layerwise(model.net_t, _images(), spatial="pool", residual_gain=0.5)
    model.train()
    assert not model.net_t.training and all(not p.requires_grad for p in model.net_t.parameters())
    enc, dec = model(_images(n=2, size=64)[0]["img"])
    assert all(torch.isfinite(e).all() for e in enc) and all(e.std() > 0 for e in enc)
    torch.testing.assert_close(model.net_t.layer1[1].bn2.weight, torch.full((16,), 0.5))


def test_layerwise_init_rejects_bad_input():
    with pytest.raises(ValueError, match="timm ResNet"):
        init_encoder_layerwise(nn.Sequential(nn.Conv2d(3, 4, 3)), _images())
    with pytest.raises(ValueError, match="no images"):
        init_encoder_layerwise(_encoder(), [])
    with pytest.raises(ValueError, match="spatial"):
        init_encoder_layerwise(_encoder(), _images(), spatial="fft")
    with pytest.raises(ValueError, match="stem"):
        init_encoder_layerwise(_encoder(), _images(), residual_gain=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        init_encoder_layerwise(_encoder(), [{"img": torch.zeros(3, 32, 32)}])

"""The timm contract where it applies (issue #23, item 3): ``output_stride`` refused as timm's non-dilated models do
(not a ``TypeError``), NHWC intermediates, MambaAD's feature access (``forward_intermediates``, ``features_only``)
and FX tracing of MambaAD through timm's notrace registry."""
from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import get_notrace_functions, get_notrace_modules

import vision_ssm  # noqa: F401  (registers the models)

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name, owner", [("test_vmamba", "VMamba"), ("test_mambavision", "MambaVision"),
                                         ("test_mambaad", "MambaAD")])
def test_output_stride_refused_as_timm_does(name, owner):
    with pytest.raises(ValueError, match=rf"{owner}: only output_stride=32 is valid, got output_stride=16 \(dilation "
                                         r"is not supported\)"):
        timm.create_model(name, features_only=True, output_stride=16)


def test_output_stride_message_names_the_indices_to_take():
    with pytest.raises(ValueError, match=r"for stride-16 features take out_indices=\(0, 1, 2\) \(stage 2 has "
                                         r"reduction 16\)"):
        timm.create_model("test_vmamba", features_only=True, output_stride=16)


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision", "test_mambaad"])
def test_output_stride_32_is_accepted(name):
    model = timm.create_model(name, features_only=True, output_stride=32)
    assert max(model.feature_info.reduction()) <= 32


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_forward_intermediates_nhwc(name):
    model = timm.create_model(name).eval()
    with torch.no_grad():
        final, nchw = model.forward_intermediates(X)
        final2, nhwc = model.forward_intermediates(X, output_fmt="NHWC")
    torch.testing.assert_close(final, final2, rtol=0, atol=0)
    assert [t.shape[-1] for t in nhwc] == model.feature_info.channels() if hasattr(model.feature_info, "channels") \
        else [i["num_chs"] for i in model.feature_info]
    for a, b in zip(nchw, nhwc):
        torch.testing.assert_close(a.permute(0, 2, 3, 1), b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"forward_intermediates: output_fmt must be one of \('NCHW', 'NHWC'\), "
                                         r"got 'NLC'"):
        model.forward_intermediates(X, output_fmt="NLC")


def test_feature_getter_nhwc():
    from timm.models._features import FeatureGetterNet

    feats = FeatureGetterNet(timm.create_model("test_vmamba"), out_indices=(1, 3), output_fmt="NHWC").eval()
    with torch.no_grad():
        maps = feats(X)
    assert [m.shape[-1] for m in maps] == feats.feature_info.channels() == [32, 128]


XA = X[:1]  # MambaAD runs an 8-direction Hilbert decoder: one image keeps these tests quick


@pytest.fixture(scope="module")
def mambaad():
    model = timm.create_model("test_mambaad").eval()
    with torch.no_grad():
        enc, dec = model(XA)
    return model, enc, dec


def test_mambaad_forward_intermediates_are_the_encoder_and_decoder_maps(mambaad):
    model, enc, dec = mambaad
    with torch.no_grad():
        final, maps = model.forward_intermediates(XA)
        nhwc = model.forward_intermediates(XA, indices=[0, 4], output_fmt="NHWC", intermediates_only=True)
        fused = model.mff_oce(enc)
    assert len(maps) == 6 == len(model.feature_info)
    for got, want in zip(maps, [enc[0], dec[0], enc[1], dec[1], enc[2], dec[2]]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, info in zip(maps, model.feature_info):
        assert got.shape[1] == info["num_chs"] and got.shape[-1] == XA.shape[-1] // info["reduction"]
    torch.testing.assert_close(final, fused, rtol=0, atol=0)
    assert final.shape == (1, 128, 2, 2)
    torch.testing.assert_close(nhwc[0], enc[0].permute(0, 2, 3, 1), rtol=0, atol=0)
    torch.testing.assert_close(nhwc[1], enc[2].permute(0, 2, 3, 1), rtol=0, atol=0)


def test_mambaad_features_only(mambaad):
    model, enc, dec = mambaad
    feats = timm.create_model("test_mambaad", features_only=True).eval()
    feats.model.load_state_dict(model.state_dict())
    with torch.no_grad():
        maps = feats(XA)
    assert feats.feature_info.channels() == [16, 16, 32, 32, 64, 64]
    assert feats.feature_info.reduction() == [4, 4, 8, 8, 16, 16]
    for got, want in zip(maps, [enc[0], dec[0], enc[1], dec[1], enc[2], dec[2]]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    enc_only = timm.create_model("test_mambaad", features_only=True, out_indices=(0, 2, 4))
    assert enc_only.model.net_s is None  # pruned: the decoder is not run (nor kept) for encoder maps
    assert [m.shape[1] for m in enc_only(XA)] == [16, 32, 64]
    with pytest.raises(RuntimeError, match=r"MambaAD: the decoder was removed by prune_intermediate_layers"):
        enc_only.model(XA)


def test_mambaad_features_only_refuses_other_feature_classes():
    with pytest.raises(ValueError, match=r"MambaAD: features_only supports feature_cls='getter' only .* got "
                                         r"feature_cls='fx'"):
        timm.create_model("test_mambaad", features_only=True, feature_cls="fx")


def _fx_trace(model):
    """``torch.fx`` tracing as timm's ``create_feature_extractor`` does it: torchvision's tracer with timm's
    registered notrace modules and functions as leaves."""
    from torchvision.models.feature_extraction import NodePathTracer

    tracer = NodePathTracer(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph)


def test_mambaad_fx_trace_equals_eager_and_trains(mambaad):
    pytest.importorskip("torchvision")
    model, enc_ref, dec_ref = mambaad
    gm = _fx_trace(model)
    with torch.no_grad():
        enc, dec = gm(XA)
    for a, b in zip(enc + dec, enc_ref + dec_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    train = _fx_trace(timm.create_model("test_mambaad", drop_path_rate=0.0).train())
    enc, dec = train(XA)
    sum(((e - d) ** 2).mean() for e, d in zip(enc, dec)).backward()
    trainable = [p for p in train.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


def test_mambaad_nhwc_encoder_is_permuted_even_when_height_equals_channels():
    # mambaout's features are NHWC (output_fmt='NHWC'); at 64 px its first map is 16x16 with 16 channels
    model = timm.create_model("test_mambaad", encoder="mambaout_femto", encoder_indices=(0, 1, 2),
                              encoder_kwargs=dict(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1))).eval()
    with torch.no_grad():
        enc = model.forward_encoder(XA)
        raw = model.net_t(XA)
    for e, r in zip(enc, raw):
        torch.testing.assert_close(e, r.permute(0, 3, 1, 2), rtol=0, atol=0)

"""The MambaAD model: registration, parameter counts, the (enc, dec) contract, the frozen encoder, sizes."""
from __future__ import annotations

import pytest
import timm
import torch
from paths import FIXTURES as FIXTURES_DIR
from safetensors import safe_open

import vision_ssm  # noqa: F401  (registers the models)
from vision_ssm.models.mambaad import MambaAD, MambaUPNet, mambaad_anomaly_map

FIXTURES = FIXTURES_DIR


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return timm.create_model("test_mambaad")


def test_registered():
    assert {"mambaad_resnet34", "test_mambaad"} <= set(timm.list_models("*mambaad*"))


def test_default_config_parameter_counts_and_layout():
    with torch.device("meta"):
        m = timm.create_model("mambaad_resnet34")
    # models.md §3.2 (upstream run on CPU): encoder 8.17M, MFF_OCE 1.46M, decoder 15.99M
    assert round(_count(m.net_t) / 1e6, 2) == 8.17
    assert round(_count(m.mff_oce) / 1e6, 2) == 1.46
    assert round(_count(m.net_s) / 1e6, 2) == 15.99
    assert m.proj is None
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == _count(m.mff_oce) + _count(m.net_s)
    sd = m.state_dict()
    assert sum(v.numel() for k, v in sd.items() if ".scans." in k) == 39_296  # the upstream int64 index elements
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    for i, (c, r, L) in enumerate([(512, 32, 64), (256, 16, 256), (128, 8, 1024), (64, 4, 4096)]):
        pre = f"net_s.layers_up.{i}.blocks.0.smm_blocks.0.self_attention."
        assert shapes[pre + "x_proj_weight"] == (8, r + 32, 2 * c)
        assert shapes[pre + "A_logs"] == (8 * 2 * c, 16)
        assert shapes[pre + "scans.index_flat"] == (1, 1, L)
        if i:
            assert shapes[f"net_s.layers_up.{i}.upsample.expand.weight"] == (4 * c, 2 * c)
    assert not any(k.startswith("net_t.layer4") or k.startswith("net_t.fc") for k in sd)
    # the decoder's keys are exactly upstream's (MambaAD naming; the fixture has the same depths, smaller dims)
    with safe_open(FIXTURES / "mambaad_decoder_mambaad.safetensors", "pt") as f:
        upstream = {k[len("state_dict."):] for k in f.keys() if k.startswith("state_dict.")}
    assert {k[len("net_s."):] for k in sd if k.startswith("net_s.")} == upstream
    assert {k[len("net_t."):] for k in sd if k.startswith("net_t.")} == set(
        timm.create_model("resnet34", features_only=True, out_indices=(1, 2, 3), pretrained=False).state_dict())
    # layer 2 (depth 6) has two LSS modules of three HSS blocks
    assert "net_s.layers_up.2.blocks.1.smm_blocks.2.ln_1.weight" in sd
    assert "net_s.layers_up.2.blocks.2.finalconv11.weight" not in sd
    # drop path: linspace(0, .2, 16) reversed, module m of layer i takes entry m of the layer's slice
    rates = [[blk.smm_blocks[0].drop_path.drop_prob for blk in layer.blocks] for layer in m.net_s.layers_up]
    expect = [[0.2], [0.16, 0.146667], [0.106667, 0.093333], [0.026667]]
    for got, want in zip(rates, expect):
        assert got == pytest.approx(want, abs=1e-5)


def test_pretrained_false_downloads_nothing(monkeypatch):
    import timm.models._builder as builder

    def _no(*a, **k):
        raise AssertionError("pretrained weights were requested")

    monkeypatch.setattr(builder, "load_pretrained", _no)
    with torch.device("meta"):
        timm.create_model("mambaad_resnet34", pretrained=False)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="No pretrained weights"):
        timm.create_model("test_mambaad", pretrained=True)


def test_forward_contract_and_frozen_encoder(tiny):
    m = tiny.train()
    assert not m.net_t.training and m.net_s.training and m.mff_oce.training
    assert not any(p.requires_grad for p in m.net_t.parameters())
    bn = next(mod for mod in m.net_t.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    enc, dec = m(x)
    assert torch.equal(bn.running_mean, stats)  # the encoder ran in eval mode
    assert [tuple(e.shape) for e in enc] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
    assert [e.shape for e in enc] == [d.shape for d in dec]
    assert not any(e.requires_grad for e in enc) and all(d.requires_grad for d in dec)
    loss = m.loss(enc, dec)
    assert loss.ndim == 0
    amap = m.anomaly_map(enc, dec, 64)
    torch.testing.assert_close(amap, mambaad_anomaly_map(enc, dec, 64, sigma=4.0))
    assert amap.shape == (2, 64, 64) and m.anomaly_score(amap).shape == (2,)
    m.eval()


def test_encoder_features_are_timm_features_only_layers(tiny):
    x = torch.randn(1, 3, 64, 64)
    ref = timm.create_model("resnet18", features_only=True, out_indices=(1, 2, 3), channels=(16, 32, 64, 128),
                            stem_width=16).eval()
    ref.load_state_dict(tiny.net_t.state_dict())
    with torch.no_grad():
        for a, b in zip(tiny.eval().forward_encoder(x), ref(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("scan,k,size", [("hilbert", 8, (96, 64)), ("zigzag", 2, (64, 128))])
def test_other_sizes_and_scans(scan, k, size):
    torch.manual_seed(0)
    m = timm.create_model("test_mambaad", scan=scan, num_directions=k, store_scan_index=False).eval()
    with torch.no_grad():
        enc, dec = m(torch.randn(1, 3, *size))
    assert [e.shape for e in enc] == [d.shape for d in dec]
    assert enc[0].shape[-2:] == (size[0] // 4, size[1] // 4)
    with pytest.raises(ValueError, match="multiple of 32"):
        m(torch.randn(1, 3, 80, 64))


def test_projection_for_non_halving_encoders():
    torch.manual_seed(0)
    m = MambaAD("resnet18", encoder_kwargs=dict(channels=(16, 24, 40, 64), stem_width=8), fusion_dim=64,
                depths=(2, 2, 2, 2), d_state=4, num_directions=2, scan="snake", store_scan_index=False).eval()
    assert m.proj is not None and [p.out_channels for p in m.proj] == [16, 24, 40]
    with torch.no_grad():
        enc, dec = m(torch.randn(1, 3, 64, 64))
    assert [e.shape for e in enc] == [d.shape for d in dec]


def test_not_a_classifier_and_bad_configs():
    with pytest.raises(ValueError, match="not a classifier"):
        MambaAD("resnet18", num_classes=10)
    with pytest.raises(ValueError, match="divisible by 3 or 2"):
        MambaAD("resnet18", depths=(3, 5, 6, 3), store_scan_index=False)


def test_grad_checkpointing_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    dec = MambaUPNet((16, 8, 4), (2, 2, 2), d_state=4, directions=4, drop_path_rate=0.0).eval()
    x = torch.randn(1, 16, 2, 2, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for flag in (False, True):
        dec.set_grad_checkpointing(flag)
        dec.zero_grad()
        y = dec(x)
        sum((t**2).mean() for t in y).backward()
        outs.append([t.detach() for t in y])
        grads.append([p.grad.clone() for p in dec.parameters()])
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(g.abs().max() > 0 for g in grads[1])

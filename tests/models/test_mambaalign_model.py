"""MambaAlign model (models.md §4): two-branch backbone, PMM/CMI/AAF wiring, heads, timm contract for two inputs."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import vision_ssm.models.mambaalign as ma
from vision_ssm.layers import PerModalMamba
from vision_ssm.models.mambaalign import MambaAlign, ModalBatchNorm2d, ModalStemConv

TINY_BACKBONE = dict(channels=(16, 32, 64, 128), stem_width=16, zero_init_last=False)


def _model(**kw) -> MambaAlign:
    torch.manual_seed(0)
    kw.setdefault("backbone_kwargs", TINY_BACKBONE)
    kw.setdefault("backend", "chunked")
    return timm.create_model("test_mambaalign", **kw)


def _inputs(B=2, H=64, W=64, aux_chans=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, H, W, generator=g), torch.randn(B, aux_chans, H, W, generator=g)


def test_registered_with_pretrained_cfg():
    names = {"mambaalign_wide_resnet50", "mambaalign_resnet18", "test_mambaalign"}
    assert names <= set(timm.list_models("*mambaalign*"))
    for n in names:
        cfg = timm.models.get_pretrained_cfg(n).to_dict()
        assert cfg["num_classes"] == 0 and len(cfg["input_size"]) == 3 and cfg["first_conv"] == "backbone.conv1"
    m = _model()
    assert m.pretrained_cfg["input_size"] == (3, 64, 64)


def test_upstream_configuration_channels():
    with torch.device("meta"):  # 648M parameters: the structure only
        m = timm.create_model("mambaalign_wide_resnet50")
    assert m.feature_channels == [512, 1024, 2048]
    assert [len(p.blocks) for p in m.pmm_rgb] == [4, 4, 4] and len(m.pmm_aux) == 3
    assert (m.cmi.d_inner, m.cmi.d_state, m.aaf.out_dim) == (256, 128, 256)
    assert m.aaf.block4.local_main[0].in_channels == 6144 and m.aaf.block3.local_main[0].in_channels == 1280


@pytest.mark.parametrize("aux_chans,hw", [(1, (64, 64)), (3, (48, 80)), (4, (37, 45))])
def test_shapes_at_odd_sizes(aux_chans, hw):
    m = _model(aux_chans=aux_chans).eval()
    rgb, aux = _inputs(H=hw[0], W=hw[1], aux_chans=aux_chans)
    with torch.no_grad():
        seg, logit = m(rgb, aux)
    assert seg.shape == (2, 1, *hw) and logit.shape == (2,)
    assert torch.isfinite(seg).all() and torch.isfinite(logit).all()
    fused = m.forward_features(rgb, aux)
    assert fused.shape[:2] == (2, 32)


def test_convolutions_shared_batchnorm_per_modality():
    m = _model(aux_chans=3).eval()
    assert not any(isinstance(x, ModalStemConv) for x in m.modules())
    plain = timm.create_model("resnet18", features_only=True, out_indices=(2, 3, 4), **TINY_BACKBONE)
    n_conv = sum(p.numel() for n, p in plain.named_parameters() if p.dim() == 4)
    assert sum(p.numel() for p in m.backbone.parameters() if p.dim() == 4) == n_conv  # one copy of every conv
    bns = [x for x in m.backbone.modules() if isinstance(x, ModalBatchNorm2d)]
    assert bns and not any(type(x) is nn.BatchNorm2d for x in m.backbone.children())
    rgb, _ = _inputs()
    with torch.no_grad():
        f_rgb, f_aux = m.forward_backbone(rgb, rgb.clone())
        for a, b in zip(f_rgb, f_aux):  # same input, same weights, same (copied) statistics
            torch.testing.assert_close(a, b)
        for bn in bns:
            bn.aux.running_mean.add_(0.5)
        g_rgb, g_aux = m.forward_backbone(rgb, rgb.clone())
    for a, b, c in zip(f_rgb, g_rgb, g_aux):
        torch.testing.assert_close(a, b)  # the RGB branch does not see the auxiliary statistics
        assert not torch.allclose(b, c)


def test_auxiliary_stem_starts_from_the_rgb_filters():
    m = _model(aux_chans=1)
    stem = m.backbone.conv1
    assert isinstance(stem, ModalStemConv)
    torch.testing.assert_close(stem.aux.weight, stem.rgb.weight.mean(1, keepdim=True))
    s4 = _model(aux_chans=4).backbone.conv1
    torch.testing.assert_close(s4.aux.weight[:, 3], s4.rgb.weight[:, 0] * 0.75)


def test_gradients_reach_every_parameter():
    m = _model()
    seg, logit = m(*_inputs())
    (seg.square().mean() + logit.square().sum()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_route_mixers_and_options_reach_the_blocks():
    m = _model(d_state=3, ssm_cfg={"d_conv": 2})
    mixers = [mix for p in (*m.pmm_rgb, *m.pmm_aux) for b in p.blocks for mix in b.ssms]
    assert len(mixers) == 6 * 4 and {(x.d_state, x.d_conv, x.backend) for x in mixers} == {(3, 2, "chunked")}
    assert m.cmi.backend == "chunked"


def test_backends_agree():
    m = _model().eval()
    rgb, aux = _inputs()
    outs = {}
    for be in ("reference", "chunked"):
        for mod in m.modules():
            if hasattr(mod, "backend"):
                mod.backend = be
        with torch.no_grad():
            outs[be] = m(rgb, aux)
    for a, b in zip(outs["chunked"], outs["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_predict_applies_sigmoid_once_and_pools_once():
    m = _model().eval()
    rgb, aux = _inputs()
    seg, logit = m(rgb, aux)
    amap, score = m.predict(rgb, aux)
    torch.testing.assert_close(amap, seg.squeeze(1).sigmoid())
    torch.testing.assert_close(score, logit.sigmoid())
    fused = m.forward_features(rgb, aux)
    torch.testing.assert_close(logit, m.head(fused.mean((2, 3))).squeeze(1))


def test_trains_with_decreasing_loss():
    m = _model(drop_path_rate=0.0)
    rgb, aux = _inputs(B=4, H=48, W=48)
    mask = torch.zeros(4, 1, 48, 48)
    mask[:2, :, 10:30, 15:35] = 1.0
    label = mask.flatten(1).amax(1)
    opt = torch.optim.AdamW(m.param_groups(lr=3e-3, weight_decay=1e-5))
    losses = []
    for _ in range(8):
        seg, logit = m(rgb, aux)
        loss = F.binary_cross_entropy_with_logits(seg, mask) + F.binary_cross_entropy_with_logits(logit, label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_param_groups_and_no_weight_decay():
    m = _model()
    groups = m.param_groups(lr=1e-3, weight_decay=0.05)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == pytest.approx(2.5e-4) and by_name["head"]["lr"] == pytest.approx(1e-3)
    assert by_name["head"]["weight_decay"] == 0.05 and by_name["head_no_decay"]["weight_decay"] == 0.0
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    for name, p in m.named_parameters():
        if name.endswith(("A_log", "ssms.0.D", "A_bar")):
            assert id(p) in no_decay, name
    default = {g["name"]: g["lr"] for g in m.param_groups()}
    assert default["backbone"] == pytest.approx(1e-4 * m.backbone_lr_mult) and default["head"] == pytest.approx(1e-4)


def test_grad_checkpointing_same_gradients():
    m = _model(drop_path_rate=0.0)
    rgb, aux = _inputs()

    def grads():
        m.zero_grad()
        seg, logit = m(rgb, aux)
        (seg.mean() + logit.sum()).backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}

    g0 = grads()
    m.set_grad_checkpointing(True)
    assert all(isinstance(p, PerModalMamba) and p.grad_checkpointing for p in m.pmm_rgb)
    g1 = grads()
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-4, atol=1e-6, msg=n)


def test_clear_errors_for_missing_or_mismatched_modality():
    m = _model().eval()
    rgb, aux = _inputs()
    with pytest.raises(ValueError, match="auxiliary modality"):
        m(rgb)
    with pytest.raises(ValueError, match="aux_chans=1"):
        m(rgb, torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="rgb must be"):
        m(aux, aux)
    with pytest.raises(ValueError, match="pixel-aligned"):
        m(rgb, aux[:, :, :32])
    with pytest.raises(ValueError, match="features_only"):
        timm.create_model("test_mambaalign", features_only=True)
    with pytest.raises(ValueError, match="classifier"):
        MambaAlign(backbone="resnet18", num_classes=3)


def test_checkpoint_filter_unwraps_training_checkpoints():
    m = _model()
    sd = {f"module.{k}": v for k, v in m.state_dict().items()}
    out = ma.checkpoint_filter_fn({"state_dict": sd, "epoch": 3}, m)
    assert out.keys() == m.state_dict().keys()
    m.load_state_dict(out)


def test_backbone_weights_from_a_local_file(tmp_path):
    src = timm.create_model("resnet18", **TINY_BACKBONE)
    with torch.no_grad():
        src.bn1.running_mean.normal_()
    torch.save(src.state_dict(), tmp_path / "backbone.pth")
    m = _model(aux_chans=3, backbone_checkpoint=str(tmp_path / "backbone.pth"))
    torch.testing.assert_close(m.backbone.conv1.weight, src.conv1.weight)
    torch.testing.assert_close(m.backbone.layer3[0].conv2.weight, src.layer3[0].conv2.weight)
    torch.testing.assert_close(m.backbone.bn1.rgb.running_mean, src.bn1.running_mean)
    torch.testing.assert_close(m.backbone.bn1.aux.running_mean, src.bn1.running_mean)

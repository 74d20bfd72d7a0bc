"""MambaAlign's RGB-only baseline (``aux_chans=0``): one branch, no CMI, AAF over the RGB scales."""
from __future__ import annotations

import pytest
import timm
import torch

import vision_ssm.models  # noqa: F401
from vision_ssm.layers import AlignmentAwareFusion
from vision_ssm.models.mambaalign import ModalBatchNorm2d, ModalStemConv


def _model(**kw):
    torch.manual_seed(0)
    kw.setdefault("backend", "chunked")
    kw.setdefault("backbone_kwargs", dict(channels=(16, 32, 64, 128), stem_width=16, zero_init_last=False))
    return timm.create_model("test_mambaalign", **kw)


def test_rgb_only_structure_and_shapes():
    m = _model(aux_chans=0).eval()
    assert m.modalities == ("rgb",) and m.cmi is None and not hasattr(m, "pmm_aux")
    assert not any(isinstance(x, (ModalBatchNorm2d, ModalStemConv)) for x in m.modules())
    assert m.aaf.num_modalities == 1
    two = _model(aux_chans=1)
    n1 = sum(p.numel() for p in m.parameters())
    n2 = sum(p.numel() for p in two.parameters())
    assert n1 < n2
    with torch.no_grad():
        seg, logit = m(torch.randn(2, 3, 48, 80))
        amap, score = m.predict(torch.randn(1, 3, 64, 64))
    assert seg.shape == (2, 1, 48, 80) and logit.shape == (2,)
    assert amap.shape == (1, 64, 64) and 0 <= float(score) <= 1


def test_rgb_only_gradients_reach_every_parameter():
    m = _model(aux_chans=0).train()
    seg, logit = m(torch.randn(2, 3, 64, 64))
    (seg.square().mean() + logit.square().sum()).backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing


def test_rgb_only_output_depends_on_rgb():
    m = _model(aux_chans=0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = m(x)[0]
        b = m(x.flip(-1))[0]
    assert not torch.allclose(a, b)


def test_clear_errors_for_a_modality_that_is_extra_or_missing():
    rgb_only = _model(aux_chans=0).eval()
    with pytest.raises(ValueError, match="RGB-only.*aux_chans=0"):
        rgb_only(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="rgb must be"):
        rgb_only(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="auxiliary modality"):
        _model(aux_chans=3).eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="aux_chans must be"):
        _model(aux_chans=-1)


def test_aaf_one_modality_layouts_and_errors():
    aaf = AlignmentAwareFusion((8, 16, 32), out_dim=12, num_modalities=1).eval()
    s3, s4, s5 = torch.randn(2, 8, 12, 10), torch.randn(2, 16, 6, 5), torch.randn(2, 32, 3, 3)
    assert aaf(s3, None, s4, None, s5, None).shape == (2, 12, 12, 10)
    with pytest.raises(ValueError, match="x_s3 must be None"):
        aaf(s3, s3, s4, None, s5, None)
    two = AlignmentAwareFusion((8, 16, 32), out_dim=12)
    with pytest.raises(ValueError, match="x_s4 must be a tensor"):
        two(s3, s3, s4, None, s5, s5)
    with pytest.raises(ValueError, match="num_modalities"):
        AlignmentAwareFusion((8, 16, 32), num_modalities=3)

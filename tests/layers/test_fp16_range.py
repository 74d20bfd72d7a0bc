"""float16 autocast keeps every selective-scan block finite when its scan output outgrows float16's range.

A skip ``D = 10⁵`` puts the scan output ``y + D·u`` far past 65504. The scan's math was fp32 already but its
output came back in float16 as ``inf`` (then NaN after the next LayerNorm or linear layer); the blocks now
hand the scan fp32 inputs and run the op that consumes its output in fp32 (``vision_ssm/layers/_precision.py``).
"""
from __future__ import annotations

import pytest
import torch

from vision_ssm.layers import SS2D, Mamba, MambaVisionMixer
from vision_ssm.layers.mambaalign import CrossMambaInteraction, QSVSSBlock
from vision_ssm.ops import use_backend

BIG = 1e5  # the skip D: the scan output reaches ~BIG·|u|


def _fp16(module, *xs):
    with torch.autocast("cpu", dtype=torch.float16):
        return module(*xs)


def _close(got, want, rtol=3e-2):
    got, want = got.float(), want.float()
    assert got.isfinite().all()
    assert (got - want).abs().max() <= rtol * want.abs().max(), float((got - want).abs().max())


@pytest.mark.parametrize("backend", [None, "reference", "chunked"], ids=["default", "reference", "chunked"])
@pytest.mark.parametrize("cfg", [
    dict(d_state=1, ssm_ratio=1.0, conv_bias=False, gate=False, channels_first=True, force_fp32=False),  # v2
    dict(),  # v0: force_fp32=True, gate, channels-last
], ids=["v2", "v0"])
def test_ss2d_output_past_fp16_range(cfg, backend):
    torch.manual_seed(0)
    m = SS2D(16, **cfg)
    with torch.no_grad():
        m.Ds.fill_(BIG)
    x = torch.randn(2, 16, 6, 6) if cfg.get("channels_first") else torch.randn(2, 6, 6, 16)
    x.requires_grad_(True)
    with use_backend(backend):
        y = _fp16(m, x)
        want = m(x)
        y.float().sum().backward()
    _close(y, want)
    assert x.grad.isfinite().all() and all(p.grad.isfinite().all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("make", [lambda: MambaVisionMixer(16), lambda: Mamba(16)], ids=["MambaVisionMixer", "Mamba"])
@pytest.mark.parametrize("backend", [None, "reference"], ids=["default", "reference"])
def test_mixer_output_past_fp16_range(make, backend):
    torch.manual_seed(0)
    m = make()
    with torch.no_grad():
        m.D.fill_(10 * BIG)  # past float16's range after out_proj too
    x = torch.randn(2, 25, 16, requires_grad=True)
    with use_backend(backend):
        y = _fp16(m, x)
        want = m(x)
        (y.sum() / (10 * BIG)).backward()  # scaled as a GradScaler would: D·u's gradient does not fit float16
    assert want.abs().max() > 65504  # the output itself does not fit float16: it comes back in fp32
    assert y.dtype == torch.float32
    _close(y, want)
    assert x.grad.isfinite().all()


def test_float16_model_keeps_its_dtype():
    """Outside autocast (a model cast with .half()) the blocks take and return float16, as before."""
    torch.manual_seed(0)
    for m, x in ((SS2D(16, force_fp32=False), torch.randn(1, 4, 4, 16)), (SS2D(16), torch.randn(1, 4, 4, 16)),
                 (MambaVisionMixer(16), torch.randn(1, 9, 16)), (Mamba(16), torch.randn(1, 9, 16))):
        y = m.half()(x.half())
        assert y.dtype == torch.float16 and y.isfinite().all()


def test_qsvss_routes_past_fp16_range():
    torch.manual_seed(0)
    blk = QSVSSBlock(16)
    assert blk.fused_scan
    with torch.no_grad():
        for s in blk.ssms:
            s.D.fill_(10 * BIG)
    u = torch.randn(1, 4, 6, 6)
    got = _fp16(blk.mix_routes, u)
    _close(got, blk.mix_routes(u))


def test_cross_mamba_interaction_states_past_fp16_range():
    torch.manual_seed(0)
    cmi = CrossMambaInteraction(8, d_inner=16, d_state=4)
    with torch.no_grad():
        cmi.B_bar.fill_(BIG)
    a, b = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    want = cmi(a, b)
    assert cmi.states(cmi.rgb_pre(a), "rgb").abs().max() > 65504
    for g, w in zip(_fp16(cmi, a, b), want):
        _close(g, w)

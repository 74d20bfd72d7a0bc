"""MambaVision layers: mixer quirks (blocks.md §4.1), windowing (§4.4), blocks and stages."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_ssm.layers import (
    MambaVisionBlock,
    MambaVisionMixer,
    MambaVisionStage,
    window_partition,
    window_reverse,
)
from vision_ssm.layers.mambavision_stage import mambavision_attn_indices
from vision_ssm.ops import selective_scan_reference


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """O(1) weights so every branch matters; dt biases from the Mamba dt range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("A_log"):
                base = torch.log(torch.arange(1, p.shape[1] + 1.0)).expand_as(p)
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("dt_proj.bias"):
                dt = torch.exp(torch.rand(p.shape, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))


def test_mixer_parameter_layout_matches_upstream():
    m = MambaVisionMixer(64)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (64, 64),
        "x_proj.weight": (4 + 16, 32),
        "dt_proj.weight": (32, 4),
        "dt_proj.bias": (32,),
        "conv1d_x.weight": (32, 1, 3),
        "conv1d_z.weight": (32, 1, 3),
        "A_log": (32, 8),
        "D": (32,),
        "out_proj.weight": (64, 64),
    }


def _mixer_by_hand(m: MambaVisionMixer, x: torch.Tensor, dt_bias_times: int) -> torch.Tensor:
    """blocks.md §4.1 written out: centred convs, Δ = softplus(W·dt + k·b), scan, concat(y, z), out_proj."""
    half = m.d_inner // 2
    xz = x @ m.in_proj.weight.T
    xs, z = xz[..., :half].transpose(1, 2), xz[..., half:].transpose(1, 2)
    xs = F.silu(F.conv1d(F.pad(xs, (1, 1)), m.conv1d_x.weight, groups=half))
    z = F.silu(F.conv1d(F.pad(z, (1, 1)), m.conv1d_z.weight, groups=half))
    dbl = xs.transpose(1, 2) @ m.x_proj.weight.T
    dt, b, c = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=-1)
    delta = F.softplus(dt @ m.dt_proj.weight.T + dt_bias_times * m.dt_proj.bias).transpose(1, 2)
    y = selective_scan_reference(
        xs, delta, -torch.exp(m.A_log), b.transpose(1, 2), c.transpose(1, 2), m.D, delta_softplus=False)
    return torch.cat([y, z], dim=1).transpose(1, 2) @ m.out_proj.weight.T


@pytest.mark.parametrize("double", [True, False])
def test_mixer_equals_spec_with_double_or_single_dt_bias(double):
    m = MambaVisionMixer(48, double_dt_bias=double)
    _randomize(m)
    x = torch.randn(3, 10, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(x)
        ref = _mixer_by_hand(m, x, 2 if double else 1)
        other = _mixer_by_hand(m, x, 1 if double else 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (out - other).abs().max() > 1e-3  # the flag matters


def test_mixer_conv_is_centred_and_scan_is_causal():
    """Token 0's output sees token 1 (centred 'same' conv) but not token 3 (causal scan, conv radius 1)."""
    m = MambaVisionMixer(32)
    _randomize(m)
    x = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = m(x)
        x1, x3 = x.clone(), x.clone()
        x1[:, 1] += 1.0
        x3[:, 3] += 1.0
        assert (m(x1)[:, 0] - base[:, 0]).abs().max() > 1e-4
        torch.testing.assert_close(m(x3)[:, :2], base[:, :2], rtol=0, atol=1e-6)
        assert (m(x3)[:, 2:] - base[:, 2:]).abs().max() > 1e-4


def test_mixer_backward_reaches_every_parameter():
    m = MambaVisionMixer(32)
    x = torch.randn(2, 6, 32, requires_grad=True)
    m(x).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert x.grad is not None


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 11), w=st.integers(1, 11), ws=st.integers(1, 5),
)
def test_window_partition_layout_padding_and_round_trip(b, c, h, w, ws):
    x = torch.randn(b, c, h, w)
    t = window_partition(x, ws)
    nh, nw = math.ceil(h / ws), math.ceil(w / ws)
    assert t.shape == (b * nh * nw, ws * ws, c)
    padded = F.pad(x, (0, nw * ws - w, 0, nh * ws - h))
    # window (bi, i, j) is row-major over the grid; token k is row-major inside the window
    for bi, i, j, k in [(0, 0, 0, 0), (b - 1, nh - 1, nw - 1, ws * ws - 1), (0, nh // 2, nw - 1, ws // 2)]:
        widx = (bi * nh + i) * nw + j
        torch.testing.assert_close(t[widx, k], padded[bi, :, i * ws + k // ws, j * ws + k % ws], rtol=0, atol=0)
    assert torch.equal(window_reverse(t, ws, h, w), x)


def test_attention_in_the_last_half_of_a_hybrid_stage():
    for d in range(1, 12):
        idx = mambavision_attn_indices(d)
        assert idx == list(range(d // 2 + 1, d) if d % 2 else range(d // 2, d))
        assert len(idx) == d // 2


@pytest.mark.parametrize("hw", [(5, 6), (8, 8), (3, 9)])
def test_hybrid_stage_pads_with_zero_tokens_that_join_every_block(hw):
    """Any size works; the result equals running the stage on the explicitly zero-padded map, then cropping."""
    torch.manual_seed(0)
    stage = MambaVisionStage(8, 16, depth=3, num_heads=2, window_size=4, conv=False, downsample=True).eval()
    _randomize(stage)
    x = torch.randn(2, 8, 2 * hw[0], 2 * hw[1])
    with torch.no_grad():
        y = stage(x)
        h, w = hw
        hp, wp = -(-h // 4) * 4, -(-w // 4) * 4
        d = stage.downsample(x)
        t = stage.blocks(window_partition(F.pad(d, (0, wp - w, 0, hp - h)), 4))
        ref = window_reverse(t, 4, hp, wp)[:, :, :h, :w]
    assert y.shape == (2, 16, h, w)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    assert [type(b.mixer).__name__ for b in stage.blocks] == ["MambaVisionMixer", "MambaVisionMixer",
                                                              "MambaVisionAttention"]


def test_block_layer_scale_and_residuals():
    blk = MambaVisionBlock(16, num_heads=2, attention=True, layer_scale=0.0).eval()
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        assert torch.equal(blk(x), x)  # zero layer scale: both residual branches vanish
        blk.gamma_1.fill_(1.0)
        assert not torch.equal(blk(x), x)
    assert MambaVisionBlock(16, num_heads=2).gamma_1 is None


def test_conv_stage_grad_checkpointing_is_exact():
    stage = MambaVisionStage(8, 16, depth=2, conv=True, downsample=True).train()
    x = torch.randn(2, 8, 12, 10)
    torch.manual_seed(0)
    a = stage(x)
    stage.grad_checkpointing = True
    torch.manual_seed(0)
    b = stage(x)
    torch.testing.assert_close(a, b)
    b.mean().backward()
    assert all(p.grad is not None for p in stage.parameters())

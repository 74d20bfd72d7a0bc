"""Clear errors for every user mistake a block can see (issue #23, item 1): wrong rank, layout, channel count,
dtype or device at the first line of ``forward``; wrong types and values of configuration at construction.
Every test asserts the message: it names the block and the argument, what it got and what it expects."""
from __future__ import annotations

import pytest
import torch

from vision_ssm.layers import (
    SS2D,
    HSSBlock,
    LSSLayer,
    LSSModule,
    Mamba,
    MambaUPNet,
    MambaVisionAttention,
    MambaVisionBlock,
    MambaVisionConvBlock,
    MambaVisionMixer,
    MambaVisionStage,
    PatchExpand2D,
    PatchMerging2D,
    VSSBlock,
    get_norm,
    window_partition,
)
from vision_ssm.ops import DirectionSpec

C = 8


# ---- layout: the expected layout is named, with a hint when the input is the other one ----------------------------

@pytest.mark.parametrize("block", [
    lambda: SS2D(C), lambda: VSSBlock(C), lambda: HSSBlock(C), lambda: LSSModule(C), lambda: PatchMerging2D(C, 16),
    lambda: PatchExpand2D(C, 4),
], ids=["SS2D", "VSSBlock", "HSSBlock", "LSSModule", "PatchMerging2D", "PatchExpand2D"])
def test_nchw_given_to_a_channels_last_block(block):
    m = block()
    name = type(m).__name__
    with pytest.raises(ValueError, match=rf"^{name}: expected x as \(B, H, W, C\) channels-last input with C=8, "
                                         r"got shape \(2, 8, 5, 6\); did you pass \(B, C, H, W\)\?"):
        m(torch.randn(2, C, 5, 6))


def test_nhwc_given_to_a_channels_first_block():
    m = VSSBlock(C, norm_layer="ln2d")
    with pytest.raises(ValueError, match=r"VSSBlock: expected x as \(B, C, H, W\) channels-first input with C=8, "
                                         r"got shape \(2, 5, 6, 8\); did you pass \(B, H, W, C\)\? Permute with "
                                         r"x.permute\(0, 3, 1, 2\)"):
        m(torch.randn(2, 5, 6, C))


def test_wrong_rank_and_channel_count():
    with pytest.raises(ValueError, match=r"SS2D: expected x as \(B, H, W, C\) channels-last input with C=8, "
                                         r"got shape \(2, 30, 8\)"):
        SS2D(C)(torch.randn(2, 30, C))
    with pytest.raises(ValueError, match=r"VSSBlock: expected x .* with C=8, got shape \(2, 4, 4, 9\)"):
        VSSBlock(C)(torch.randn(2, 4, 4, 9))
    with pytest.raises(ValueError, match=r"SS2D: expected x as \(B, C, H, W\) channels-first input with C=8"):
        SS2D(C, channels_first=True)(torch.randn(2, 4, 4, 4))


@pytest.mark.parametrize("block", [
    lambda: Mamba(C), lambda: MambaVisionMixer(C), lambda: MambaVisionAttention(C, 2), lambda: MambaVisionBlock(C, 2),
], ids=["Mamba", "MambaVisionMixer", "MambaVisionAttention", "MambaVisionBlock"])
def test_token_blocks_name_the_token_layout(block):
    m = block()
    name = type(m).__name__
    with pytest.raises(ValueError, match=rf"^{name}: expected \w+ as \(B, L, C\) token input with C=8, got shape "
                                         r"\(2, 8, 4, 4\); a \(B, C, H, W\) map\? Flatten it to tokens"):
        m(torch.randn(2, C, 4, 4))
    with pytest.raises(ValueError, match=rf"^{name}: expected \w+ as \(B, L, C\) token input with C=8, got shape "
                                         r"\(2, 8, 16\); did you pass \(B, C, L\)\? Transpose"):
        m(torch.randn(2, C, 16))


def test_nchw_maps_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"MambaVisionConvBlock: expected x as \(B, C, H, W\) channels-first input "
                                         r"with C=8, got shape \(2, 6, 6, 8\)"):
        MambaVisionConvBlock(C)(torch.randn(2, 6, 6, C))
    with pytest.raises(ValueError, match=r"MambaVisionStage: expected x as \(B, C, H, W\) .* with C=8, got shape "
                                         r"\(2, 4, 6, 6\)"):
        MambaVisionStage(C, 16, 1, num_heads=2, window_size=2)(torch.randn(2, 4, 6, 6))
    with pytest.raises(ValueError, match=r"MambaUPNet: expected x as \(B, C, H, W\) .* with C=32"):
        MambaUPNet((32, 16), (2, 2))(torch.randn(1, 2, 2, 32))
    with pytest.raises(ValueError, match=r"LSSLayer: expected x as \(B, H, W, C\) .* with C=16"):
        LSSLayer(C, 2, upsample=True)(torch.randn(1, 2, 2, C))
    with pytest.raises(ValueError, match=r"window_partition: expected x as \(B, C, H, W\) channels-first input, "
                                         r"got shape \(4, 8\)"):
        window_partition(torch.randn(4, C), 2)


def test_not_a_tensor():
    with pytest.raises(TypeError, match=r"SS2D: expected x to be a torch.Tensor \(B, H, W, C\) channels-last, "
                                        r"got list"):
        SS2D(C)([[1.0] * C])


# ---- dtype and device ------------------------------------------------------------------------------------------------

def test_integer_input_is_refused_with_a_conversion_hint():
    with pytest.raises(TypeError, match=r"SS2D: expected x to be a floating-point tensor, got torch.uint8; convert it "
                                        r"with x.float\(\) \(8-bit images: x.float\(\) / 255\)"):
        SS2D(C)(torch.zeros(1, 4, 4, C, dtype=torch.uint8))


def test_input_dtype_other_than_the_weights():
    with pytest.raises(ValueError, match=r"VSSBlock: x is torch.float64 but the weights are torch.float32; cast the "
                                         r"input \(x.to\(torch.float32\)\) or the module"):
        VSSBlock(C)(torch.zeros(1, 4, 4, C, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"Mamba: hidden_states is torch.bfloat16 but the weights are torch.float32"):
        Mamba(C)(torch.zeros(1, 4, C, dtype=torch.bfloat16))


def test_autocast_allows_a_lower_precision_input():
    m = SS2D(C, backend="chunked")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(torch.randn(1, 4, 4, C, dtype=torch.bfloat16))
    assert y.shape == (1, 4, 4, C)


def test_input_on_another_device_than_the_weights():
    with pytest.raises(ValueError, match=r"SS2D: x is on meta but the weights are on cpu; move the input "
                                         r"\(x.to\('cpu'\)\) or the module \(module.to\('meta'\)\)"):
        SS2D(C)(torch.zeros(1, 4, 4, C, device="meta"))
    with pytest.raises(ValueError, match=r"MambaVisionMixer: x is on meta but the weights are on cpu"):
        MambaVisionMixer(C)(torch.zeros(1, 4, C, device="meta"))


def test_sizes_a_block_cannot_take():
    m = LSSModule(C).train()
    with pytest.raises(ValueError, match=r"LSSModule: in training x needs more than one pixel \(instance norm\), "
                                         r"got shape \(2, 1, 1, 8\)"):
        m(torch.randn(2, 1, 1, C))
    with pytest.raises(ValueError, match=r"SS2D: x needs H and W >= 1, got shape \(2, 0, 4, 8\)"):
        SS2D(C)(torch.randn(2, 0, 4, C))


# ---- configuration values at construction ------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: SS2D(0), r"SS2D: d_model must be an int >= 1, got 0"),
    (lambda: SS2D(8.0), r"SS2D: d_model must be an int >= 1, got 8.0 \(float\)"),
    (lambda: SS2D(C, d_state=0), r"SS2D: d_state must be an int >= 1, got 0"),
    (lambda: SS2D(C, ssm_ratio=0), r"SS2D: ssm_ratio must be > 0, got 0"),
    (lambda: SS2D(C, dt_rank="4"), r"SS2D: dt_rank must be an int >= 1, got '4' \(str\)"),
    (lambda: SS2D(C, dropout=1.0), r"SS2D: dropout must be in \[0, 1\), got 1.0"),
    (lambda: SS2D(C, d_conv=-1), r"SS2D: d_conv must be an int >= 0, got -1"),
    (lambda: VSSBlock(0), r"VSSBlock: dim must be an int >= 1, got 0"),
    (lambda: VSSBlock(C, drop_path=1.5), r"VSSBlock: drop_path must be in \[0, 1\), got 1.5"),
    (lambda: VSSBlock(C, mlp_ratio=-1), r"VSSBlock: mlp_ratio must be >= 0, got -1"),
    (lambda: HSSBlock(C, drop_path=-0.1), r"HSSBlock: drop_path must be in \[0, 1\), got -0.1"),
    (lambda: LSSModule(C, depth=0), r"LSSModule: depth must be an int >= 1, got 0"),
    (lambda: MambaUPNet((32, 16), (2, 2), drop_path_rate=2.0), r"MambaUPNet: drop_path_rate must be in \[0, 1\)"),
    (lambda: MambaUPNet((32, "16"), (2, 2)), r"MambaUPNet: dims\[1\] must be an int >= 1, got '16' \(str\)"),
    (lambda: PatchMerging2D(C, 0), r"PatchMerging2D: out_dim must be an int >= 1, got 0"),
    (lambda: PatchExpand2D(C, 2.5), r"PatchExpand2D: out_dim must be an int >= 1, got 2.5 \(float\)"),
    (lambda: Mamba(0), r"Mamba: d_model must be an int >= 1, got 0"),
    (lambda: Mamba(C, expand=0), r"Mamba: expand must be > 0, got 0"),
    (lambda: Mamba(C, d_conv=0), r"Mamba: d_conv must be an int >= 1, got 0"),
    (lambda: MambaVisionMixer(0), r"MambaVisionMixer: d_model must be an int >= 1, got 0"),
    (lambda: MambaVisionMixer(C, d_state=True), r"MambaVisionMixer: d_state must be an int >= 1, got True \(bool\)"),
    (lambda: MambaVisionAttention(C, num_heads=0), r"MambaVisionAttention: num_heads must be an int >= 1, got 0"),
    (lambda: MambaVisionBlock(C, 2, drop_path=1.0), r"MambaVisionBlock: drop_path must be in \[0, 1\), got 1.0"),
    (lambda: MambaVisionStage(C, C, 2, window_size=0, downsample=False),
     r"MambaVisionStage: window_size must be an int >= 1, got 0"),
    (lambda: MambaVisionStage(C, C, 2, drop_path=[0.1, 1.2], downsample=False),
     r"MambaVisionStage: drop_path\[1\] must be in \[0, 1\), got 1.2"),
])
def test_bad_configuration_values(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_directions_must_be_an_int():
    with pytest.raises(TypeError, match=r"SS2D: directions must be an int >= 1, got '4' \(str\)"):
        SS2D(C, directions="4")
    with pytest.raises(TypeError, match=r"SS2D: directions must be an int >= 1, got 4.0 \(float\)"):
        VSSBlock(C, directions=4.0)
    with pytest.raises(ValueError, match=r"scan family 'hilbert' supports num_directions in \(1, 2, 4, 8\), got 3"):
        HSSBlock(C, directions=3)


def test_scan_is_checked_at_construction_not_at_the_first_forward():
    with pytest.raises(ValueError, match=r"unknown scan family 'bogus'; known: sweep, snake"):
        SS2D(C, scan="bogus")
    with pytest.raises(TypeError, match=r"SS2D: scan must be a family name \('hilbert'\), .* got 4 \(int\)"):
        SS2D(C, scan=4)
    with pytest.raises(ValueError, match=r"SS2D: directions=DirectionSpec\('custom', ...\) has no scan order"):
        SS2D(C, directions=DirectionSpec("custom", 4))
    with pytest.raises(ValueError, match=r"scan as a tuple must be \(family, K\)"):
        HSSBlock(C, scan=("hilbert", 8, 1))


def test_norm_layer_errors():
    with pytest.raises(ValueError, match=r"unknown norm_layer 'lnx' \(VMamba: 'ln', 'ln2d', 'bn'"):
        get_norm("lnx")
    with pytest.raises(TypeError, match=r"norm_layer must be a string or a callable, got int"):
        get_norm(5)
    with pytest.raises(ValueError, match=r"norm_layer='ln' is NHWC; it cannot be used with channels_first=True"):
        VSSBlock(C, norm_layer="ln", channels_first=True)

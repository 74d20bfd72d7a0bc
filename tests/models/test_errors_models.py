"""Clear errors of the models for user mistakes (issue #23, item 1): image batches in the wrong layout, rank,
channel count or dtype, and wrong configuration values, each named in the message."""
from __future__ import annotations

import pytest
import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)


@pytest.fixture(scope="module")
def vmamba():
    return timm.create_model("test_vmamba").eval()


@pytest.fixture(scope="module")
def mambavision():
    return timm.create_model("test_mambavision").eval()


@pytest.fixture(scope="module")
def mambaad():
    return timm.create_model("test_mambaad").eval()


@pytest.mark.parametrize("fixture_name, owner", [("vmamba", "VMamba"), ("mambavision", "MambaVision"),
                                                 ("mambaad", "MambaAD")])
def test_channels_last_images(request, fixture_name, owner):
    model = request.getfixturevalue(fixture_name)
    with pytest.raises(ValueError, match=rf"^{owner}: expected images as \(B, C, H, W\) channels-first input with "
                                         r"C=3, got shape \(2, 64, 64, 3\); did you pass \(B, H, W, C\)\? Permute with "
                                         r"x.permute\(0, 3, 1, 2\)"):
        model(torch.randn(2, 64, 64, 3))


def test_single_image_without_batch_dim(vmamba):
    with pytest.raises(ValueError, match=r"VMamba: expected images as \(B, C, H, W\) channels-first input with C=3, "
                                         r"got shape \(3, 64, 64\); a single image\? Add the batch dim with "
                                         r"x.unsqueeze\(0\)"):
        vmamba(torch.randn(3, 64, 64))


def test_wrong_channel_count(vmamba, mambavision):
    with pytest.raises(ValueError, match=r"VMamba: expected images as \(B, C, H, W\) .* with C=3, got shape "
                                         r"\(2, 1, 64, 64\)"):
        vmamba.forward_features(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"MambaVision: expected images .* with C=3, got shape \(2, 4, 64, 64\)"):
        mambavision.forward_intermediates(torch.randn(2, 4, 64, 64))


def test_uint8_images(mambavision):
    with pytest.raises(TypeError, match=r"MambaVision: expected images to be a floating-point tensor, got torch.uint8; "
                                        r"convert it with x.float\(\) \(8-bit images: x.float\(\) / 255\)"):
        mambavision(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_images_in_another_dtype_than_the_model(vmamba):
    with pytest.raises(ValueError, match=r"VMamba: images is torch.float16 but the weights are torch.float32"):
        vmamba(torch.zeros(1, 3, 64, 64, dtype=torch.float16))


def test_mambaad_size_rule(mambaad):
    with pytest.raises(ValueError, match=r"MambaAD: images must have H and W a multiple of 32, got shape "
                                         r"\(1, 3, 64, 48\) \(B, C, H, W\); resize or pad them"):
        mambaad(torch.randn(1, 3, 64, 48))


def test_vmamba_v1_stem_needs_patch_size_pixels():
    model = timm.create_model("test_vmamba", patchembed_version="v1")
    with pytest.raises(ValueError, match=r"VMamba: images needs H and W >= 4, got shape \(1, 3, 2, 2\)"):
        model(torch.randn(1, 3, 2, 2))


@pytest.mark.parametrize("name, kwargs, message", [
    ("test_vmamba", dict(drop_path_rate=1.5), r"VMamba: drop_path_rate must be in \[0, 1\), got 1.5"),
    ("test_vmamba", dict(drop_rate=-0.5), r"VMamba: drop_rate must be in \[0, 1\), got -0.5"),
    ("test_vmamba", dict(dims=0), r"VMamba: dims must be an int >= 1, got 0"),
    ("test_vmamba", dict(dims=(8, 16)), r"VMamba: dims needs 4 entries, got 2: \[8, 16\]"),
    ("test_vmamba", dict(depths=(1, 0, 1, 1)), r"VMamba: depths\[1\] must be an int >= 1, got 0"),
    ("test_vmamba", dict(in_chans="3"), r"VMamba: in_chans must be an int >= 1, got '3' \(str\)"),
    ("test_vmamba", dict(num_classes=-1), r"VMamba: num_classes must be an int >= 0, got -1"),
    ("test_vmamba", dict(downsample_version="v9"),
     r"VMamba: downsample_version must be one of \('v1', 'v2', 'v3'\), got 'v9'"),
    ("test_vmamba", dict(directions="4"), r"SS2D: directions must be an int >= 1, got '4' \(str\)"),
    ("test_vmamba", dict(scan="bogus"), r"unknown scan family 'bogus'"),
    ("test_mambavision", dict(drop_path_rate=1.5), r"MambaVision: drop_path_rate must be in \[0, 1\), got 1.5"),
    ("test_mambavision", dict(window_size=(2, 2, 0, 2)), r"MambaVision: window_size\[2\] must be an int >= 1, got 0"),
    ("test_mambavision", dict(num_heads=(2, 2)), r"MambaVision: num_heads needs 4 entries, got 2"),
    ("test_mambavision", dict(d_state=0), r"MambaVisionMixer: d_state must be an int >= 1, got 0"),
    ("test_mambaad", dict(drop_path_rate=1.5), r"MambaAD: drop_path_rate must be in \[0, 1\), got 1.5"),
    ("test_mambaad", dict(encoder_indices=(1, 2)), r"MambaAD: encoder_indices needs 3 entries, got 2"),
    ("test_mambaad", dict(num_directions="8"), r"SS2D: directions must be an int >= 1, got '8' \(str\)"),
    ("test_mambaad", dict(num_classes=10), r"MambaAD is not a classifier; num_classes must be 0, got 10"),
])
def test_bad_model_arguments(name, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        timm.create_model(name, **kwargs)

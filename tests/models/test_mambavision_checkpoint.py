"""Loading official MambaVision checkpoints: checkpoint_filter_fn and timm.create_model(pretrained=True, file=...)."""
from __future__ import annotations

import argparse

import pytest
import timm
import torch
from _mv_fixture import assert_close_rel, build, load_fixture, model_kwargs
from safetensors.torch import save_file

from vision_ssm.models.mambavision import checkpoint_filter_fn

META, T, SD = load_fixture("mambavision_small")


def _upstream_like_variant_kwargs() -> dict:
    kw = model_kwargs(META)
    kw.pop("layer_scale_conv")
    return kw


@pytest.fixture(scope="module")
def model():
    return build(META).eval()


def _prefixed(sd: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in sd.items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 310},
        lambda sd: {"model": sd},
        lambda sd: {"state_dict": _prefixed(sd, "module.")},
        lambda sd: _prefixed(sd, "model."),  # Hugging Face remote-code wrapper
        lambda sd: _prefixed(sd, "encoder."),
        lambda sd: _prefixed(sd, "_orig_mod."),
    ],
    ids=["raw", "state_dict", "model", "ddp_module", "hf_model", "encoder", "compiled"],
)
def test_filter_accepts_official_wrappers_and_prefixes(model, wrap):
    out = checkpoint_filter_fn(wrap(dict(SD)), model)
    result = model.load_state_dict(out, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(out["stem.0.weight"], SD["patch_embed.conv_down.0.weight"])
    assert torch.equal(out["stages.3.downsample.weight"], SD["levels.2.downsample.reduction.0.weight"])
    assert torch.equal(out["head.fc.bias"], SD["head.bias"])


def test_filter_passes_own_layout_through(model):
    own = model.state_dict()
    out = checkpoint_filter_fn(own, model)
    assert out.keys() == own.keys() and all(out[k] is own[k] for k in own)


def test_filter_rejects_other_variant_naming_the_keys():
    wider = build(META, dim=24)
    with pytest.raises(ValueError, match=r"stages\.0\.blocks\.0\.conv1\.weight: checkpoint \(16, 16, 3, 3\)"):
        checkpoint_filter_fn(SD, wider)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    """The fixture weights saved the way the official training script does (a .pth.tar wrapper)."""
    path = tmp_path_factory.mktemp("mv") / "mambavision_fixture_1k.pth.tar"
    torch.save({"state_dict": SD, "epoch": 309, "arch": "mamba_vision_S", "args": argparse.Namespace(lr=5e-3)}, path)
    return str(path)


def _create(file, **kw):
    """A registered entrypoint with the fixture's architecture; the file has a 10-class head."""
    args = dict(_upstream_like_variant_kwargs(), **kw)
    return timm.create_model(
        "mambavision_small", pretrained=True, pretrained_cfg_overlay=dict(file=file, num_classes=10), **args,
    ).eval()


def test_create_model_loads_official_file_as_is(official_file):
    model = _create(official_file)
    with torch.no_grad():
        for case in META["cases"]:
            x = T[case["inputs"][0]]
            assert_close_rel(model(x), T[case["outputs"][0]], f"case {case['case']}")


def test_create_model_loads_hf_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in _prefixed(SD, "model.").items()}, str(path))
    model = _create(str(path))
    with torch.no_grad():
        assert_close_rel(model(T["input.1"]), T["output.1"], "hf safetensors")


def test_create_model_new_head_and_features_only(official_file):
    model = _create(official_file, num_classes=5)
    assert model.get_classifier().out_features == 5
    gray = _create(official_file, in_chans=1)  # timm adapts the (exempt) first conv
    assert torch.allclose(gray.stem[0].weight, SD["patch_embed.conv_down.0.weight"].sum(1, keepdim=True))
    feats = timm.create_model(
        "mambavision_small", pretrained=True, features_only=True,
        pretrained_cfg_overlay=dict(file=official_file, num_classes=10),
        **{k: v for k, v in _upstream_like_variant_kwargs().items() if k != "num_classes"}, num_classes=10,
    ).eval()
    with torch.no_grad():
        out = feats(T["input.1"])
        _, inter = model.forward_intermediates(T["input.1"])
    for i, (a, b) in enumerate(zip(out, inter)):
        assert_close_rel(a, T[f"features.{4 + i}"], f"features_only level {i}")
        assert torch.equal(a, b)


def test_create_model_rejects_mismatched_file_naming_keys(official_file):
    # same widths, other depths/attention placement: the strict load names the keys
    with pytest.raises(RuntimeError, match=r"stages\.2\.blocks\.2\.mixer\.qkv\.weight"):
        timm.create_model(
            "test_mambavision", pretrained=True, num_classes=10,
            pretrained_cfg_overlay=dict(file=official_file, num_classes=10),
        )
    # other widths: checkpoint_filter_fn names the mismatching tensors
    with pytest.raises(ValueError, match=r"(?s)shape mismatches.*stages\.0\.blocks\.0\.conv1\.weight"):
        timm.create_model("mambavision_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=official_file))

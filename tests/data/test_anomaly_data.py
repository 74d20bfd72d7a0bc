"""Folder datasets (MVTec AD / VisA / Real-IAD layouts), synthetic writers, the texture demo builder."""
import json

import numpy as np
import pytest
import torch

from vision_ssm.data.anomaly_folders import AnomalyDataset, list_classes
from vision_ssm.data.anomaly_synthetic import write_tiny_dataset
from vision_ssm.data.texture_demo import DEFECTS, build_texture_demo, make_defect


@pytest.mark.parametrize("layout", ["mvtec", "visa", "realiad"])
def test_tiny_dataset_round_trip(tmp_path, layout):
    root = write_tiny_dataset(tmp_path / layout, layout, classes=("alpha", "beta"), n_train=3, n_good=2, n_bad=2,
                              size=24)
    assert list_classes(root, layout) == ["alpha", "beta"]
    train = AnomalyDataset(root, layout, "train", image_size=32)
    test = AnomalyDataset(root, layout, "test", image_size=32)
    assert len(train) == 6 and len(test) == 8
    assert all(r["label"] == 0 for r in train.records)
    item = test[len(test) - 1]
    assert item["img"].shape == (3, 32, 32) and item["img"].dtype == torch.float32
    assert item["mask"].shape == (32, 32)
    assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    labels = np.array([test[i]["label"] for i in range(len(test))])
    mask_any = np.array([bool(test[i]["mask"].any()) for i in range(len(test))])
    assert labels.sum() == 4
    np.testing.assert_array_equal(labels.astype(bool), mask_any)  # masks exactly on the anomalous images
    assert {test[i]["cls_name"] for i in range(len(test))} == {"alpha", "beta"}
    # a single class
    only = AnomalyDataset(root, layout, "test", classes=["beta"], image_size=16)
    assert len(only) == 4 and only[0]["cls_name"] == "beta"
    # normalised like ImageNet: roughly zero-centred values, not [0, 1]
    assert item["img"].min() < 0


def test_default_collate_works(tmp_path):
    root = write_tiny_dataset(tmp_path, "mvtec", n_good=1, n_bad=1)
    batch = next(iter(torch.utils.data.DataLoader(AnomalyDataset(root, "mvtec", "test", image_size=16), batch_size=4)))
    assert batch["img"].shape == (4, 3, 16, 16) and len(batch["cls_name"]) == 4 and len(batch["path"]) == 4


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data root"):
        AnomalyDataset(tmp_path / "nope", "mvtec", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no mvtec classes"):
        AnomalyDataset(tmp_path / "empty", "mvtec", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        AnomalyDataset(tmp_path, "kitti", "train")
    with pytest.raises(ValueError, match="split"):
        AnomalyDataset(tmp_path, "mvtec", "val")
    root = write_tiny_dataset(tmp_path / "m", "mvtec", classes=("alpha",))
    with pytest.raises(FileNotFoundError, match="class 'gamma'"):
        AnomalyDataset(root, "mvtec", "train", classes=["gamma"])
    # a missing mask folder is named
    import shutil

    shutil.rmtree(root / "alpha" / "ground_truth")
    with pytest.raises(FileNotFoundError, match="mask folder"):
        AnomalyDataset(root, "mvtec", "test")
    v = write_tiny_dataset(tmp_path / "v", "visa", classes=("alpha",))
    (v / "split_csv" / "1cls.csv").unlink()
    with pytest.raises(FileNotFoundError, match="VisA split file"):
        AnomalyDataset(v, "visa", "test", classes=["alpha"])
    r = write_tiny_dataset(tmp_path / "r", "realiad", classes=("alpha",))
    entry = json.loads((r / "alpha.json").read_text())["test"][-1]
    (r / "alpha" / entry["image_path"]).unlink()
    with pytest.raises(FileNotFoundError, match="Real-IAD image"):
        AnomalyDataset(r, "realiad", "test", classes=["alpha"])


def test_make_defect_kinds():
    rng = np.random.default_rng(0)
    crop = rng.random((64, 64)).astype(np.float32)
    foreign = rng.random((64, 64)).astype(np.float32) * 0.5
    for kind in DEFECTS:
        img, mask = make_defect(rng, crop, kind, foreign)
        assert img.shape == crop.shape and mask.dtype == bool
        assert 10 < mask.sum() < 0.5 * mask.size, kind
        assert np.abs(img - crop)[mask].mean() > np.abs(img - crop)[~mask].mean(), kind
    with pytest.raises(ValueError, match="unknown defect"):
        make_defect(rng, crop, "dent", foreign)


def test_texture_demo_builder(tmp_path):
    root = build_texture_demo(tmp_path / "demo", classes=("brick", "gravel"), n_train=3, n_test_good=2,
                              n_test_bad=4, size=48, seed=1)
    test = AnomalyDataset(root, "mvtec", "test", image_size=48)
    assert len(AnomalyDataset(root, "mvtec", "train", image_size=48)) == 6 and len(test) == 12
    assert {r["specie"] for r in test.records} == {"good", *DEFECTS}
    assert all(test[i]["mask"].any() == bool(test[i]["label"]) for i in range(len(test)))
    before = (root / "brick" / "train" / "good" / "000.png").stat().st_mtime_ns
    build_texture_demo(tmp_path / "demo", classes=("brick", "gravel"), n_train=3, n_test_good=2, n_test_bad=4,
                       size=48, seed=1)  # same arguments: reused, not rewritten
    assert (root / "brick" / "train" / "good" / "000.png").stat().st_mtime_ns == before

"""Folder datasets never drop a class silently (issue #23, item 1): an incomplete class folder raises, naming it and
what it lacks, or (``skip_incomplete=True``) is left out with a warning that names it."""
from __future__ import annotations

import shutil

import pytest

from vision_ssm.data.anomaly_folders import AnomalyDataset, list_classes
from vision_ssm.data.anomaly_synthetic import write_tiny_dataset


@pytest.fixture
def mvtec(tmp_path):
    return write_tiny_dataset(tmp_path / "mvtec", "mvtec", classes=("alpha", "beta", "gamma"), n_train=1, n_good=1,
                              n_bad=1, size=8)


def test_class_without_train_folder_raises_naming_it(mvtec):
    shutil.rmtree(mvtec / "beta" / "train")
    msg = (r"mvtec data root .*: incomplete class folders: 'beta' \(no train/\)\. Complete them, move them out of the "
           r"root, name the classes to use \(classes=\[\.\.\.\]\), or pass skip_incomplete=True to leave them out")
    with pytest.raises(FileNotFoundError, match=msg):
        list_classes(mvtec, "mvtec")
    for split in ("train", "test"):  # neither split drops it
        with pytest.raises(FileNotFoundError, match=r"incomplete class folders: 'beta' \(no train/\)"):
            AnomalyDataset(mvtec, "mvtec", split, image_size=8)


def test_every_incomplete_class_is_listed(mvtec):
    shutil.rmtree(mvtec / "alpha" / "test")
    (mvtec / "delta").mkdir()
    with pytest.raises(FileNotFoundError, match=r"incomplete class folders: 'alpha' \(no test/\); 'delta' \(no train/ "
                                                r"and no test/\)"):
        list_classes(mvtec, "mvtec")


def test_skip_incomplete_warns_with_the_names(mvtec):
    shutil.rmtree(mvtec / "beta" / "train")
    with pytest.warns(UserWarning, match=r"leaving out incomplete class folders: 'beta' \(no train/\)"):
        assert list_classes(mvtec, "mvtec", skip_incomplete=True) == ["alpha", "gamma"]
    with pytest.warns(UserWarning, match=r"'beta' \(no train/\)"):
        data = AnomalyDataset(mvtec, "mvtec", "test", image_size=8, skip_incomplete=True)
    assert data.classes == ["alpha", "gamma"]


def test_hidden_folders_and_files_are_not_classes(mvtec):
    (mvtec / ".ipynb_checkpoints").mkdir()
    (mvtec / "license.txt").write_text("x")
    assert list_classes(mvtec, "mvtec") == ["alpha", "beta", "gamma"]


def test_realiad_index_without_its_folder(tmp_path):
    root = write_tiny_dataset(tmp_path / "realiad", "realiad", classes=("alpha", "beta"), n_train=1, n_good=1,
                              n_bad=1, size=8)
    shutil.rmtree(root / "beta")
    with pytest.raises(FileNotFoundError, match=r"realiad data root .*: incomplete class folders: 'beta' \(beta.json "
                                                r"without a beta/ folder\)"):
        list_classes(root, "realiad")

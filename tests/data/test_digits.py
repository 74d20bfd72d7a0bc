"""scikit-learn's digits exported as an ImageFolder: counts, stratified fixed split, pixels, idempotence, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vision_ssm.data.digits import DIGITS_CLASSES, export_digits, split_digits


def test_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    tr, va = split_digits(labels, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(labels)
    for c in range(10):
        n = (labels == c).sum()
        assert (labels[va] == c).sum() == round(0.2 * n)
    tr2, va2 = split_digits(labels, 0.2, seed=0)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, split_digits(labels, 0.2, seed=1)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        split_digits(labels, 1.0)


def test_export_writes_every_real_image_once(tmp_path):
    from sklearn.datasets import load_digits

    root = export_digits(tmp_path / "d", size=8, rgb=False)
    meta = json.loads((root / "digits.json").read_text())
    files = sorted(root.glob("*/*/*.png"))
    assert len(files) == 1797 == meta["num_images"]
    idx = sorted(int(f.stem) for f in files)
    assert idx == list(range(1797))  # each source image exactly once, train or val
    n_val = sum(1 for f in files if f.parts[-3] == "val")
    assert n_val == sum(meta["counts"]["val"].values()) and 350 < n_val < 370
    bunch = load_digits()
    for f in files[::97]:
        i, c = int(f.stem), int(f.parent.name)
        assert bunch.target[i] == c
        px = np.asarray(Image.open(f))
        assert np.array_equal(px, np.round(bunch.images[i] * 255 / 16).astype(np.uint8))
    assert sorted(p.name for p in (root / "train").iterdir()) == list(DIGITS_CLASSES)


def test_export_upsamples_and_is_idempotent(tmp_path):
    root = export_digits(tmp_path / "d", size=32)
    im = Image.open(next((root / "val" / "3").glob("*.png")))
    assert im.size == (32, 32) and im.mode == "RGB"
    stamp = (root / "digits.json").stat().st_mtime_ns
    assert export_digits(tmp_path / "d", size=32) == root  # same export: nothing rewritten
    assert (root / "digits.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="different digits export"):
        export_digits(tmp_path / "d", size=16)
    with pytest.raises(ValueError, match="size must be an integer >= 8"):
        export_digits(tmp_path / "e", size=4)

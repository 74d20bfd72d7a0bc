"""Tiny ImageFolders of real digits (scikit-learn's load_digits) for the classification tests."""
from __future__ import annotations

import shutil
from pathlib import Path

from vision_ssm.data.digits import export_digits


def digits_subset(src: Path, dst: Path, train_per_class: int, val_per_class: int,
                  classes: tuple[int, ...] = tuple(range(10))) -> Path:
    """Copy the first ``train_per_class`` / ``val_per_class`` images of each of ``classes`` from a digits export
    ``src`` (``train/`` and ``val/``) into a new ImageFolder ``dst``."""
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in classes:
            files = sorted((src / split / str(c)).glob("*.png"))[:n]
            assert len(files) == n, f"{src}/{split}/{c} has {len(files)} < {n} images"
            (dst / split / str(c)).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy(f, dst / split / str(c) / f.name)
    return dst


def export_small_digits(root: Path, size: int = 16) -> Path:
    """The full digits export at ``size`` pixels (train 1,438 / val 359)."""
    return export_digits(root, size=size)

"""Writers of tiny synthetic anomaly datasets in each folder layout (for tests and smoke runs).

Normal images are smooth random colour fields with fine noise; anomalous images add one or two
bright rectangles, whose pixels are the ground-truth mask. ``write_tiny_dataset(root, layout)``
writes ``mvtec``, ``visa`` or ``realiad`` layouts that :class:`~vision_ssm.data.AnomalyDataset`
reads.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_tiny_dataset"]


def _normal(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    img = base[None, None, :] + 40 * np.sin(6 * xx + 3 * yy)[..., None] + rng.normal(0, 8, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _defect(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 3)):
        h, w = rng.integers(max(2, size // 8), max(3, size // 3), 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[y : y + h, x : x + w] = 255
    img = img.copy()
    img[mask > 0] = 255 - img[mask > 0] // 4
    return img, mask


def _save(path: Path, arr: np.ndarray) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return str(path)


def write_tiny_dataset(root: str | Path, layout: str = "mvtec", classes: Sequence[str] = ("alpha", "beta"),
                       n_train: int = 6, n_good: int = 3, n_bad: int = 3, size: int = 32, seed: int = 0) -> Path:
    """Write a tiny synthetic dataset in the folder layout of MVTec AD, VisA or Real-IAD.

    Args:
        root: output folder (created).
        layout: ``"mvtec"``, ``"visa"`` or ``"realiad"``.
        classes: class names.
        n_train: normal training images per class.
        n_good: normal test images per class.
        n_bad: anomalous test images per class (with masks).
        size: image side in pixels.
        seed: random seed (the output is deterministic).

    Returns:
        ``root`` as a Path, ready for ``AnomalyDataset(root, layout, ...)``.
    """
    if layout not in ("mvtec", "visa", "realiad"):
        raise ValueError(f"unknown layout {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []  # VisA csv rows
    for ci, cls in enumerate(classes):
        base = np.array([60 + 50 * ci, 120, 200 - 50 * ci], np.float64) % 256
        items = [("train", "good", _normal(rng, size, base), None) for _ in range(n_train)]
        items += [("test", "good", _normal(rng, size, base), None) for _ in range(n_good)]
        items += [("test", "defect", *_defect(rng, _normal(rng, size, base))) for _ in range(n_bad)]
        entries = {"train": [], "test": []}
        for k, (split, specie, img, mask) in enumerate(items):
            name = f"{k:03d}.png"
            if layout == "mvtec":
                _save(root / cls / split / specie / name, img)
                if mask is not None:
                    _save(root / cls / "ground_truth" / specie / f"{k:03d}_mask.png", mask)
            elif layout == "visa":
                kind = "Normal" if mask is None else "Anomaly"
                img_rel = f"{cls}/Data/Images/{kind}/{k:03d}.JPG"
                _save(root / img_rel, img)
                mask_rel = ""
                if mask is not None:
                    mask_rel = f"{cls}/Data/Masks/Anomaly/{k:03d}.png"
                    _save(root / mask_rel, mask)
                rows.append([cls, split, "normal" if mask is None else "anomaly", img_rel, mask_rel])
            else:
                view = f"C{k % 5 + 1}"
                state = "OK" if mask is None else "NG"
                img_rel = f"{state}/S{k:04d}/{cls}_{k:04d}_{state}_{view}_20240101.jpg"
                _save(root / cls / img_rel, img)
                entry = {"image_path": img_rel, "mask_path": None, "anomaly_class": "OK"}
                if mask is not None:
                    entry["mask_path"] = img_rel[:-4] + ".png"
                    entry["anomaly_class"] = "AK"
                    _save(root / cls / entry["mask_path"], mask)
                entries[split].append(entry)
        if layout == "realiad":
            (root / f"{cls}.json").write_text(json.dumps({"meta": {"prefix": ""}, **entries}))
    if layout == "visa":
        (root / "split_csv").mkdir(parents=True, exist_ok=True)
        with open(root / "split_csv" / "1cls.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["object", "split", "label", "image", "mask"])
            w.writerows(rows)
    return root

"""Anomaly-detection folder datasets: MVTec AD, VisA and Real-IAD, as ADer reads them.

Every dataset is a list of records ``{"img_path", "mask_path", "cls_name", "label", "specie"}``
(paths absolute, ``mask_path`` ``""`` for normal images) wrapped by :class:`AnomalyDataset`,
which loads and preprocesses like MambaAD (``anomaly.md`` §2.9): RGB, bilinear resize to
``image_size``, ImageNet normalisation; masks binarised, bilinearly resized, then ``> 0.5``.

Layouts (``root`` is the dataset folder):

* ``mvtec``: ``<cls>/train/good/*``, ``<cls>/test/{good,<defect>}/*``,
  ``<cls>/ground_truth/<defect>/*`` (images and masks sorted by name and paired by index);
* ``visa``: ``split_csv/1cls.csv`` with columns ``object,split,label,image,mask`` (paths relative
  to ``root``; label ``anomaly`` marks anomalous images);
* ``realiad``: ``<cls>.json`` = ``{"train": [...], "test": [...]}`` with entries
  ``{"image_path", "mask_path", "anomaly_class"}`` relative to ``<cls>/``; ``"OK"`` is normal.
"""
from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AnomalyDataset",
    "list_classes",
    "scan_mvtec",
    "scan_realiad",
    "scan_visa",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMG_EXT)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _incomplete(root: Path, dataset: str, bad: dict[str, str], skip_incomplete: bool) -> None:
    """Raise (or, with ``skip_incomplete``, warn) about class folders that cannot be read; never drop them silently."""
    if not bad:
        return
    listed = "; ".join(f"{name!r} ({why})" for name, why in sorted(bad.items()))
    if not skip_incomplete:
        raise FileNotFoundError(
            f"{dataset} data root {root}: incomplete class folders: {listed}. Complete them, move them out of the "
            f"root, name the classes to use (classes=[...]), or pass skip_incomplete=True to leave them out"
        )
    warnings.warn(f"{dataset} data root {root}: leaving out incomplete class folders: {listed}", stacklevel=3)


def list_classes(root: str | Path, dataset: str, skip_incomplete: bool = False) -> list[str]:
    """The class names present in a dataset folder (sorted).

    A class folder that cannot be read (MVTec layout: a non-hidden folder of ``root`` without ``train/`` or
    ``test/``; Real-IAD: a ``<cls>.json`` without its ``<cls>/`` folder) raises instead of being dropped.

    Args:
        root: the dataset folder.
        dataset: ``"mvtec"``, ``"visa"`` or ``"realiad"``.
        skip_incomplete: leave incomplete class folders out with a warning that names them, instead of raising.

    Raises:
        FileNotFoundError: no classes, or incomplete class folders (without ``skip_incomplete``).
        ValueError: unknown ``dataset``.
    """
    root = _need(Path(root), f"{dataset} data root")
    if dataset == "mvtec":
        names, bad = [], {}
        for p in root.iterdir():
            if not p.is_dir() or p.name.startswith((".", "_")):
                continue
            missing = [sub for sub in ("train", "test") if not (p / sub).is_dir()]
            if missing:
                bad[p.name] = "no " + " and no ".join(f"{m}/" for m in missing)
            else:
                names.append(p.name)
        _incomplete(root, dataset, bad, skip_incomplete)
    elif dataset == "visa":
        with open(_need(root / "split_csv" / "1cls.csv", "VisA split file")) as f:
            names = list({row["object"] for row in csv.DictReader(f)})
    elif dataset == "realiad":
        names = [p.stem for p in root.glob("*.json") if (root / p.stem).is_dir()]
        bad = {p.stem: f"{p.name} without a {p.stem}/ folder" for p in root.glob("*.json")
               if not (root / p.stem).is_dir()}
        _incomplete(root, dataset, bad, skip_incomplete)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if not names:
        raise FileNotFoundError(f"no {dataset} classes found under {root} (see docs/tasks/anomaly.md for the layout)")
    return sorted(names)


def scan_mvtec(root: str | Path, split: str, classes: Sequence[str]) -> list[dict]:
    """Records of MVTec AD (also any dataset in its layout, e.g. the texture demo)."""
    root = Path(root)
    out = []
    for cls in classes:
        base = _need(root / cls / split, f"MVTec {split} folder of class {cls!r}")
        for specie_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            imgs = _images(specie_dir)
            if specie_dir.name == "good":
                masks = [""] * len(imgs)
            else:
                gt_dir = _need(root / cls / "ground_truth" / specie_dir.name,
                               f"mask folder for {cls}/{specie_dir.name}")
                masks = [str(p) for p in _images(gt_dir)]
                if len(masks) != len(imgs):
                    raise FileNotFoundError(
                        f"{specie_dir} has {len(imgs)} images but {gt_dir} has {len(masks)} masks"
                    )
            for img, mask in zip(imgs, masks):
                out.append(dict(img_path=str(img), mask_path=mask, cls_name=cls,
                                label=int(specie_dir.name != "good"), specie=specie_dir.name))
        if not any(r["cls_name"] == cls for r in out):
            raise FileNotFoundError(f"no images under {base}")
    return out


def scan_visa(root: str | Path, split: str, classes: Sequence[str]) -> list[dict]:
    """Records of VisA from ``split_csv/1cls.csv``."""
    root = Path(root)
    out = []
    with open(_need(root / "split_csv" / "1cls.csv", "VisA split file")) as f:
        for row in csv.DictReader(f):
            if row["split"] != split or row["object"] not in classes:
                continue
            label = int(row["label"] == "anomaly")
            img = _need(root / row["image"], "VisA image")
            mask = str(_need(root / row["mask"], "VisA mask")) if label and row.get("mask") else ""
            out.append(dict(img_path=str(img), mask_path=mask, cls_name=row["object"], label=label,
                            specie="anomaly" if label else "normal"))
    missing = set(classes) - {r["cls_name"] for r in out}
    if missing:
        raise FileNotFoundError(f"VisA split file lists no {split} images for {sorted(missing)}")
    return out


def scan_realiad(root: str | Path, split: str, classes: Sequence[str]) -> list[dict]:
    """Records of Real-IAD from the per-class json files."""
    root = Path(root)
    out = []
    for cls in classes:
        with open(_need(root / f"{cls}.json", f"Real-IAD index of class {cls!r}")) as f:
            entries = json.load(f)[split]
        for e in entries:
            label = int(e["anomaly_class"] != "OK")
            img = _need(root / cls / e["image_path"], "Real-IAD image")
            mask = str(_need(root / cls / e["mask_path"], "Real-IAD mask")) if label else ""
            out.append(dict(img_path=str(img), mask_path=mask, cls_name=cls, label=label, specie=e["anomaly_class"]))
    return out


DATASETS = {"mvtec": scan_mvtec, "visa": scan_visa, "realiad": scan_realiad}


class AnomalyDataset(Dataset):
    """A folder anomaly dataset, multi-class ("unified") or per class.

    Args:
        root: the dataset folder.
        dataset: ``"mvtec"``, ``"visa"`` or ``"realiad"``.
        split: ``"train"`` (normal images only) or ``"test"``.
        classes: class names; ``None`` = all classes found.
        image_size: side of the square model input.
        mean: per-channel input mean of the encoder (default ImageNet's; use the encoder's ``pretrained_cfg``).
        std: per-channel input std of the encoder (default ImageNet's).
        skip_incomplete: with ``classes=None``, leave incomplete class folders out with a warning instead of
            raising (see :func:`list_classes`).

    Items are dicts: ``img`` float ``(3, S, S)`` (normalised with ``mean``/``std``), ``mask`` float ``(S, S)`` in
    {0, 1}, ``label`` int (1 = anomalous), ``cls_name`` str, ``path`` str.
    """

    def __init__(self, root: str | Path, dataset: str, split: str, classes: Sequence[str] | None = None,
                 image_size: int = 256, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, skip_incomplete: bool = False):
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.root = Path(root)
        self.classes = list(classes) if classes else list_classes(root, dataset, skip_incomplete)
        self.records = DATASETS[dataset](self.root, split, self.classes)
        if not self.records:
            raise FileNotFoundError(f"no {split} images for {self.classes} under {self.root}")
        self.image_size = int(image_size)
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        r = self.records[i]
        s = self.image_size
        with Image.open(r["img_path"]) as im:
            img = np.asarray(im.convert("RGB").resize((s, s), Image.BILINEAR), dtype=np.float32) / 255.0
        img = (torch.from_numpy(img).permute(2, 0, 1) - self.mean) / self.std
        if r["mask_path"]:
            with Image.open(r["mask_path"]) as m:
                binary = Image.fromarray(((np.asarray(m.convert("L")) > 0) * 255).astype(np.uint8))
            mask = np.asarray(binary.resize((s, s), Image.BILINEAR), dtype=np.float32) / 255.0 > 0.5
            mask = torch.from_numpy(mask.astype(np.float32))
        else:
            mask = torch.zeros(s, s)
        return {"img": img, "mask": mask, "label": r["label"], "cls_name": r["cls_name"], "path": r["img_path"]}

"""scikit-learn's handwritten digits exported once to an ImageFolder: a real classification set that runs anywhere.

``sklearn.datasets.load_digits`` ships 1,797 real 8x8 grayscale scans of the digits 0-9 (values 0-16) inside
the scikit-learn wheel (nothing is downloaded). :func:`export_digits` writes them as PNG files, upsampled to
``size x size`` (bicubic), in the layout timm's ``ImageFolder`` / ``create_dataset`` read::

    root/train/<digit>/<index>.png
    root/val/<digit>/<index>.png
    root/digits.json            # what was written: sizes, split, per-class counts, format version

The train/val split is stratified by class and fixed by ``seed`` (a per-class shuffle, then the first
``round(val_fraction * n_class)`` images of each class go to ``val/``), so every run and every machine sees the
same held-out images. A second call with the same arguments finds ``digits.json`` and writes nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["DIGITS_CLASSES", "export_digits", "split_digits"]

#: Class folder names, in label order (ImageFolder sorts them the same way).
DIGITS_CLASSES = tuple(str(d) for d in range(10))
_VERSION = 1


def split_digits(labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded train/val split of sample indices.

    Args:
        labels: ``(N,)`` integer class labels.
        val_fraction: share of each class held out for validation, in ``(0, 1)``.
        seed: seed of the per-class shuffle.

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint index arrays covering ``range(N)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(val_fraction * len(idx)))
        if n_val == 0 or n_val == len(idx):
            raise ValueError(f"val_fraction={val_fraction} leaves class {c} ({len(idx)} images) without train or "
                             "val images")
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _to_image(img8: np.ndarray, size: int, rgb: bool):
    """One ``(8, 8)`` digit in [0, 16] as a PIL image of ``size x size`` (bicubic), grayscale or RGB."""
    from PIL import Image

    im = Image.fromarray(np.clip(img8 * (255.0 / 16.0), 0, 255).round().astype(np.uint8), mode="L")
    if size != 8:
        im = im.resize((size, size), Image.BICUBIC)
    return im.convert("RGB") if rgb else im


def export_digits(
        root: str | Path,
        size: int = 32,
        val_fraction: float = 0.2,
        seed: int = 0,
        rgb: bool = True,
        overwrite: bool = False,
) -> Path:
    """Write scikit-learn's digits as an ImageFolder with ``train/`` and ``val/`` (see the module docstring).

    Args:
        root: output folder (created).
        size: side of the written images in pixels (>= 8; the source is 8x8).
        val_fraction: stratified share of each class held out in ``val/``.
        seed: seed of the split.
        rgb: write 3-channel PNGs (what ImageNet-style models and timm's transforms expect) instead of grayscale.
        overwrite: re-export even if ``root/digits.json`` records the same export.

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: for a ``size`` below 8 or a ``val_fraction`` outside ``(0, 1)``.
        FileExistsError: if ``root`` holds a different digits export (other size/split) or other files in
            ``train/`` / ``val/`` and ``overwrite`` is False.
    """
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8 (the source images are 8x8), got {size!r}")
    root = Path(root)
    meta = {"version": _VERSION, "size": int(size), "val_fraction": float(val_fraction), "seed": int(seed),
            "rgb": bool(rgb)}
    meta_path = root / "digits.json"
    if meta_path.exists() and not overwrite:
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} == meta:
            return root
        raise FileExistsError(f"{root} holds a different digits export ({ {k: old.get(k) for k in meta} }); "
                              f"asked for {meta}: pass overwrite=True or another root")
    if not overwrite and any((root / s).exists() and any((root / s).iterdir()) for s in ("train", "val")):
        raise FileExistsError(f"{root}/train or {root}/val already holds files; pass overwrite=True or another root")

    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    train_idx, val_idx = split_digits(labels, val_fraction, seed)
    counts: dict[str, dict[str, int]] = {}
    for split, idx in (("train", train_idx), ("val", val_idx)):
        if overwrite and (root / split).exists():
            for old in (root / split).glob("*/*.png"):
                old.unlink()
        for c in DIGITS_CLASSES:
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in idx:
            _to_image(images[i], size, rgb).save(root / split / str(labels[i]) / f"{i:04d}.png")
        counts[split] = {c: int((labels[idx] == int(c)).sum()) for c in DIGITS_CLASSES}
    meta.update(num_images=int(len(labels)), counts=counts, source="sklearn.datasets.load_digits")
    meta_path.write_text(json.dumps(meta, indent=1))
    return root

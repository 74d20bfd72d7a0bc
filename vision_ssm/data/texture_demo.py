"""The texture demo dataset: real scikit-image textures with realistic synthetic defects.

Source images are the 512x512 photographs scikit-image ships (``skimage.data.brick``, ``grass``,
``gravel``; nothing is downloaded). Each class is one texture:

* training images: normal crops from the top 60 % of the photo (random positions, random
  horizontal flips);
* test images: crops from the bottom 40 % (never seen in training), half left normal, half with
  one defect and its ground-truth mask.

Defects, each blended with a soft (blurred) alpha so edges look natural; the mask is
``alpha >= 0.5``:

* ``patch``: a blob of a foreign texture (another class or another scikit-image photo),
  matched to the local mean/contrast so it is not a plain brightness change;
* ``scratch``: a thin, smooth random curve, brighter or darker than the surface;
* ``hole``: an irregular dark blob with shading (a pit or a burn);
* ``stain``: an irregular blob whose brightness and contrast are changed (a discoloration).

The images are written in the MVTec AD layout (``<cls>/train/good``, ``<cls>/test/<defect>``,
``<cls>/ground_truth/<defect>``) so the ordinary recipe and loaders run on them.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFECTS", "TEXTURES", "build_texture_demo", "make_defect"]

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("patch", "scratch", "hole", "stain")
_FOREIGN = ("brick", "grass", "gravel", "camera", "moon", "coins")
_VERSION = 1


def _source(name: str) -> np.ndarray:
    """A scikit-image photo as float32 grayscale in [0, 1] (only bundled files, no download)."""
    import skimage.data
    from skimage.color import rgb2gray

    img = getattr(skimage.data, name)()
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
        return img.astype(np.float32)
    return img.astype(np.float32) / 255.0


def _blob(rng: np.random.Generator, size: int, radius: float, roughness: float = 0.35) -> np.ndarray:
    """A soft irregular blob (float alpha in [0, 1]) centred away from the borders."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = rng.uniform(0.25 * size, 0.75 * size, 2)
    ry, rx = radius * rng.uniform(0.6, 1.4, 2)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    noise = gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), size / 16)
    noise /= noise.std() + 1e-6
    field = 1.0 - np.sqrt(u**2 + v**2) + roughness * noise * 0.5
    alpha = np.clip(field * 4.0 + 0.5, 0.0, 1.0)
    return gaussian_filter(alpha, 1.0)


def _scratch(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin smooth curve (float alpha in [0, 1])."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    p0, p1, p2 = rng.uniform(0.15 * size, 0.85 * size, (3, 2))
    t = np.linspace(0, 1, 4 * size)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # quadratic Bezier
    line = np.zeros((size, size), bool)
    ij = np.clip(np.round(pts).astype(int), 0, size - 1)
    line[ij[:, 0], ij[:, 1]] = True
    width = rng.uniform(1.0, 2.5)
    alpha = np.clip(width + 0.5 - distance_transform_edt(~line), 0.0, 1.0)
    return gaussian_filter(alpha.astype(np.float32), 0.7)


def make_defect(rng: np.random.Generator, crop: np.ndarray, kind: str, foreign: np.ndarray) -> tuple:
    """Add one defect to a grayscale crop.

    Args:
        rng: random generator.
        crop: ``(S, S)`` float32 in [0, 1].
        kind: one of :data:`DEFECTS`.
        foreign: ``(S, S)`` float32 crop of another texture (used by ``patch``).

    Returns:
        ``(image, mask)``: the defective crop (float32 in [0, 1]) and its bool mask (``alpha >= 0.5``).
    """
    from scipy.ndimage import gaussian_filter

    size = crop.shape[0]
    mean, std = crop.mean(), crop.std() + 1e-6
    if kind == "patch":
        alpha = _blob(rng, size, rng.uniform(0.1, 0.2) * size)
        f = (foreign - foreign.mean()) / (foreign.std() + 1e-6)
        content = mean + f * std * rng.uniform(0.9, 1.3)
    elif kind == "scratch":
        alpha = _scratch(rng, size)
        content = np.clip(crop + rng.choice([-1, 1]) * rng.uniform(0.3, 0.5), 0, 1)
    elif kind == "hole":
        alpha = _blob(rng, size, rng.uniform(0.06, 0.13) * size)
        shade = gaussian_filter(alpha, size / 32)
        content = crop * 0.25 * (1.0 - 0.5 * shade) + 0.03
    elif kind == "stain":
        alpha = _blob(rng, size, rng.uniform(0.1, 0.2) * size)
        gain = rng.choice([0.55, 1.45]) * rng.uniform(0.9, 1.1)
        content = mean + (gaussian_filter(crop, 1.2) - mean) * 0.5 + (gain - 1.0) * mean * 0.6
    else:
        raise ValueError(f"unknown defect {kind!r}; expected one of {DEFECTS}")
    img = np.clip(crop * (1 - alpha) + content * alpha, 0.0, 1.0).astype(np.float32)
    return img, alpha >= 0.5


def _crop(rng: np.random.Generator, src: np.ndarray, size: int, rows: tuple[int, int]) -> np.ndarray:
    y = rng.integers(rows[0], rows[1] - size + 1)
    x = rng.integers(0, src.shape[1] - size + 1)
    return src[y : y + size, x : x + size]


def build_texture_demo(root: str | Path, classes: Sequence[str] = TEXTURES, n_train: int = 60, n_test_good: int = 20,
                       n_test_bad: int = 40, size: int = 128, seed: int = 0) -> Path:
    """Write (or reuse) the texture demo dataset in the MVTec AD layout.

    Args:
        root: output folder; reused as is when it holds a dataset built with the same arguments.
        classes: scikit-image textures, one class each.
        n_train: normal training crops per class.
        n_test_good: normal test crops per class.
        n_test_bad: defective test crops per class (the defect kinds in turn).
        size: crop side in pixels (the images keep the photo's native scale).
        seed: random seed (the dataset is deterministic).

    Returns:
        ``root`` as a Path.
    """
    from PIL import Image

    root = Path(root)
    config = dict(version=_VERSION, classes=list(classes), n_train=n_train, n_test_good=n_test_good,
                  n_test_bad=n_test_bad, size=size, seed=seed)
    manifest = root / "texture_demo.json"
    if manifest.exists() and json.loads(manifest.read_text()) == config:
        return root
    rng = np.random.default_rng(seed)
    sources = {name: _source(name) for name in set(classes) | set(_FOREIGN)}

    def save(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    def to_rgb(gray: np.ndarray) -> np.ndarray:
        return np.repeat((np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)

    for cls in classes:
        src = sources[cls]
        split_row = int(src.shape[0] * 0.6)
        for k in range(n_train):
            crop = _crop(rng, src, size, (0, split_row))
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            save(root / cls / "train" / "good" / f"{k:03d}.png", to_rgb(crop))
        for k in range(n_test_good):
            crop = _crop(rng, src, size, (split_row, src.shape[0]))
            save(root / cls / "test" / "good" / f"{k:03d}.png", to_rgb(crop))
        for k in range(n_test_bad):
            kind = DEFECTS[k % len(DEFECTS)]
            crop = _crop(rng, src, size, (split_row, src.shape[0]))
            other = rng.choice([n for n in _FOREIGN if n != cls])
            foreign = _crop(rng, sources[other], size, (0, sources[other].shape[0]))
            img, mask = make_defect(rng, crop, kind, foreign)
            save(root / cls / "test" / kind / f"{k:03d}.png", to_rgb(img))
            save(root / cls / "ground_truth" / kind / f"{k:03d}_mask.png", mask.astype(np.uint8) * 255)
    manifest.write_text(json.dumps(config))
    return root

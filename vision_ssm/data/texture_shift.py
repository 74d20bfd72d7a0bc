"""A second texture generator, for evaluation beyond the demo's own data (held-out settings).

The demo's data (:mod:`vision_ssm.data.texture_demo`) takes crops at the photo's native scale and
adds four defect kinds. Defaults chosen on it can overfit its generator. This module builds the
same three classes (scikit-image's ``brick``, ``grass``, ``gravel``) differently:

* every image, normal or not, training or test: a crop at a random **scale** (the crop side is
  ``size x U(scale)`` source pixels, resized to ``size``), random horizontal and vertical **flips**,
  a random smooth **geometric warp** (displacement field of amplitude ``warp`` pixels), a random
  **brightness/contrast** change and a random **colour tint** (per-channel gains), so the normal
  images already vary in ways the demo's do not;
* defect kinds (:data:`SHIFT_DEFECTS`), none of them the demo's:

  - ``thin_scratch``: a 1–1.5 px wide polyline, brighter or darker;
  - ``color_spot``: an irregular blob tinted in a saturated colour, brightness kept;
  - ``warp``: a local swirl of the texture inside a disc (geometry changed, intensities not);
  - ``crack``: a dark, jagged random-walk line with a branch;
  - ``smudge``: an irregular blob blurred and flattened towards its mean;
  - ``cut``: a sharp-edged polygon filled with a flat, slightly noisy grey.

A *setting* is a seed plus a subset of kinds. The documentation's numbers use two settings,
:data:`TUNING_SETTING` (defaults were chosen on it) and :data:`HELDOUT_SETTING` (only reported),
with different seeds and disjoint defect kinds; the demo's own test set is a third. Output is in
the MVTec AD layout, like the demo's.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["HELDOUT_SETTING", "SHIFT_DEFECTS", "TUNING_SETTING", "build_texture_shift", "shift_defect"]

SHIFT_DEFECTS = ("thin_scratch", "color_spot", "warp", "crack", "smudge", "cut")
#: Used to choose the demo's defaults.
TUNING_SETTING = dict(seed=101, kinds=("crack", "smudge", "cut"))
#: Reported only (never used to choose anything).
HELDOUT_SETTING = dict(seed=202, kinds=("thin_scratch", "color_spot", "warp"))
_VERSION = 1
_COLORS = np.array([[0.85, 0.25, 0.1], [0.2, 0.45, 0.9], [0.25, 0.75, 0.2], [0.9, 0.75, 0.1], [0.7, 0.2, 0.75]],
                   np.float32)


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), sigma)
    return f / (np.abs(f).max() + 1e-6)


def _remap(img: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]].astype(np.float32)
    coords = [yy + dy, xx + dx]
    if img.ndim == 2:
        return map_coordinates(img, coords, order=1, mode="reflect")
    return np.stack([map_coordinates(img[..., c], coords, order=1, mode="reflect") for c in range(img.shape[2])], -1)


def _blob(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Soft irregular blob (alpha in [0, 1]) centred away from the borders."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = rng.uniform(0.25 * size, 0.75 * size, 2)
    r = np.hypot(yy - cy, xx - cx) / radius
    field = 1.0 - r + 0.25 * _smooth_field(rng, size, size / 12)
    return np.clip(field * 5.0 + 0.5, 0.0, 1.0)


def _polyline(rng: np.random.Generator, size: int, n: int, step: float, jitter: float) -> np.ndarray:
    pts = [rng.uniform(0.2 * size, 0.8 * size, 2)]
    ang = rng.uniform(0, 2 * np.pi)
    for _ in range(n):
        ang += rng.normal(0, jitter)
        pts.append(np.clip(pts[-1] + step * np.array([np.sin(ang), np.cos(ang)]), 1, size - 2))
    return np.array(pts)


def _draw(size: int, pts: np.ndarray, width: float) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    line = np.zeros((size, size), bool)
    for a, b in zip(pts[:-1], pts[1:]):
        t = np.linspace(0, 1, int(np.ceil(np.abs(b - a).max() * 3)) + 2)[:, None]
        ij = np.round(a + t * (b - a)).astype(int)
        line[ij[:, 0], ij[:, 1]] = True
    return np.clip(width + 0.5 - distance_transform_edt(~line), 0.0, 1.0).astype(np.float32)


def shift_defect(rng: np.random.Generator, img: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Add one defect of ``kind`` (:data:`SHIFT_DEFECTS`) to an RGB image.

    Args:
        rng: random generator.
        img: ``(S, S, 3)`` float32 in [0, 1].
        kind: the defect kind.

    Returns:
        ``(image, mask)``: the defective image (float32 in [0, 1]) and its bool mask.
    """
    from scipy.ndimage import gaussian_filter

    size = img.shape[0]
    gray = img.mean(2)
    if kind == "thin_scratch":
        alpha = _draw(size, _polyline(rng, size, 6, size / 8, 0.25), rng.uniform(0.5, 1.0))
        content = np.clip(img + rng.choice([-1, 1]) * rng.uniform(0.25, 0.45), 0, 1)
        mask = alpha >= 0.5
    elif kind == "color_spot":
        alpha = _blob(rng, size, rng.uniform(0.06, 0.14) * size)
        tint = _COLORS[rng.integers(len(_COLORS))]
        content = np.clip(gray[..., None] * tint / tint.mean() * rng.uniform(0.9, 1.1), 0, 1)
        mask = alpha >= 0.5
    elif kind == "warp":
        cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
        rad = rng.uniform(0.1, 0.18) * size
        yy, xx = np.mgrid[:size, :size].astype(np.float32)
        r = np.hypot(yy - cy, xx - cx) / rad
        theta = rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * np.clip(1 - r, 0, 1) ** 2
        c, s = np.cos(theta), np.sin(theta)
        dy, dx = (c - 1) * (yy - cy) - s * (xx - cx), s * (yy - cy) + (c - 1) * (xx - cx)
        moved = np.hypot(dy, dx)
        return _remap(img, dy, dx).astype(np.float32), moved >= 1.0
    elif kind == "crack":
        pts = _polyline(rng, size, 10, size / 14, 0.8)
        branch = _polyline(rng, size, 4, size / 14, 0.8)
        branch = branch - branch[0] + pts[len(pts) // 2]
        alpha = np.maximum(_draw(size, pts, rng.uniform(0.8, 1.6)), _draw(size, np.clip(branch, 1, size - 2), 0.8))
        content = img * 0.2
        mask = alpha >= 0.5
    elif kind == "smudge":
        alpha = _blob(rng, size, rng.uniform(0.1, 0.18) * size)
        blurred = np.stack([gaussian_filter(img[..., c], 3.0) for c in range(3)], -1)
        content = blurred.mean((0, 1)) + (blurred - blurred.mean((0, 1))) * 0.4
        mask = alpha >= 0.5
    elif kind == "cut":
        cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
        n = rng.integers(3, 6)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.06, 0.14) * size * rng.uniform(0.7, 1.3, n)
        from skimage.draw import polygon

        alpha = np.zeros((size, size), np.float32)
        rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), (size, size))
        alpha[rr, cc] = 1.0
        content = np.full_like(img, rng.uniform(0.3, 0.7)) + rng.normal(0, 0.02, img.shape).astype(np.float32)
        mask = alpha >= 0.5
    else:
        raise ValueError(f"unknown defect {kind!r}; expected one of {SHIFT_DEFECTS}")
    a = alpha[..., None]
    return np.clip(img * (1 - a) + content * a, 0, 1).astype(np.float32), mask


def _view(rng: np.random.Generator, src: np.ndarray, size: int, rows: tuple[int, int], scale: tuple[float, float],
          warp: float) -> np.ndarray:
    """One normal RGB view: scaled crop, flips, smooth warp, brightness/contrast and colour tint."""
    from PIL import Image

    side = int(round(size * rng.uniform(*scale)))
    side = min(side, rows[1] - rows[0], src.shape[1])
    y = rng.integers(rows[0], rows[1] - side + 1)
    x = rng.integers(0, src.shape[1] - side + 1)
    crop = Image.fromarray(src[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
    g = np.asarray(crop, np.float32)
    if rng.random() < 0.5:
        g = g[:, ::-1]
    if rng.random() < 0.5:
        g = g[::-1]
    if warp > 0:
        g = _remap(np.ascontiguousarray(g), warp * _smooth_field(rng, size, size / 6),
                   warp * _smooth_field(rng, size, size / 6))
    g = (g - g.mean()) * rng.uniform(0.8, 1.2) + g.mean() * rng.uniform(0.85, 1.15)
    rgb = g[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    return np.clip(rgb, 0, 1).astype(np.float32)


def build_texture_shift(root: str | Path, seed: int, kinds: Sequence[str], classes: Sequence[str] = (
        "brick", "grass", "gravel"), n_train: int = 48, n_test_good: int = 20, n_test_bad: int = 42, size: int = 128,
        scale: tuple[float, float] = (0.7, 1.6), warp: float = 2.0) -> Path:
    """Write (or reuse) one setting of the shifted texture dataset in the MVTec AD layout.

    Args:
        root: output folder; reused as is when it holds a dataset built with the same arguments.
        seed: random seed (the dataset is deterministic).
        kinds: defect kinds from :data:`SHIFT_DEFECTS`, used in turn.
        classes: scikit-image textures, one class each.
        n_train: normal training images per class.
        n_test_good: normal test images per class.
        n_test_bad: defective test images per class.
        size: image side in pixels.
        scale: range of the crop side relative to ``size`` (1 = the photo's native scale).
        warp: amplitude in pixels of the random smooth warp of every image.

    Returns:
        ``root`` as a Path.
    """
    from PIL import Image

    from .texture_demo import _source

    bad = [k for k in kinds if k not in SHIFT_DEFECTS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {SHIFT_DEFECTS}, got {list(kinds)}")
    root = Path(root)
    config = dict(version=_VERSION, seed=seed, kinds=list(kinds), classes=list(classes), n_train=n_train,
                  n_test_good=n_test_good, n_test_bad=n_test_bad, size=size, scale=list(scale), warp=warp)
    manifest = root / "texture_shift.json"
    if manifest.exists() and json.loads(manifest.read_text()) == config:
        return root
    rng = np.random.default_rng(seed)

    def save(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    def u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)

    for cls in classes:
        src = _source(cls)
        split = int(src.shape[0] * 0.6)
        for k in range(n_train):
            save(root / cls / "train" / "good" / f"{k:03d}.png", u8(_view(rng, src, size, (0, split), scale, warp)))
        for k in range(n_test_good):
            save(root / cls / "test" / "good" / f"{k:03d}.png",
                 u8(_view(rng, src, size, (split, src.shape[0]), scale, warp)))
        for k in range(n_test_bad):
            kind = kinds[k % len(kinds)]
            img, mask = shift_defect(rng, _view(rng, src, size, (split, src.shape[0]), scale, warp), kind)
            save(root / cls / "test" / kind / f"{k:03d}.png", u8(img))
            save(root / cls / "ground_truth" / kind / f"{k:03d}_mask.png", mask.astype(np.uint8) * 255)
    manifest.write_text(json.dumps(config))
    return root

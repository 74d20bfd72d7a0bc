"""Two-modality synthetic data: the MambaAlign demo set (textures + surface normals) and tiny test trees.

**Demo set** (:func:`build_align_demo`). The RGB modality is a scikit-image texture photograph (``brick``,
``grass``, ``gravel``; bundled, nothing is downloaded) tinted with a per-class colour. The auxiliary
modality is the surface-normal map of a height field consistent with the texture: the smoothed
brightness, scaled by ``relief`` (bright = high), differentiated with central differences,
``n = (−∂h/∂x, −∂h/∂y, 1) / ‖·‖`` (channels x right, y down, z towards the camera), stored as 8-bit PNG
``(n + 1) / 2 · 255``. Training crops come from the top 60 % of each photo, test crops from the bottom 40 %.
Test defects, one irregular soft blob each (mask ``alpha ≥ 0.5``), in three kinds:

* ``rgb_only`` (stain / discolouration): the colour inside the blob is re-tinted and its brightness
  changed; the height field, hence the normals, is untouched;
* ``aux_only`` (dent / bump): the height field gets a smooth dent or bump of depth ``≈ 0.35–0.6 × radius``
  under the blob; the RGB image is untouched;
* ``both`` (a burnt dent): both changes under the same blob.

Written in the generic RGB-X layout (``<cls>/<split>/<type>/{rgb,normals,gt}/``) that
:class:`~vision_ssm.data.RGBXDataset` reads with ``layout="rgbx", aux_folder="normals",
aux_kind="normals"``.

**Tiny trees** (:func:`write_tiny_rgbx`): random smooth two-modality images in the MulSen-AD, Real-IAD D³
or generic layout, defects visible in both modalities, for tests and smoke runs.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ALIGN_DEFECTS",
    "ALIGN_TEXTURES",
    "build_align_demo",
    "colorize",
    "height_from_texture",
    "make_rgbx_defect",
    "normals_from_height",
    "normals_to_png",
    "write_tiny_rgbx",
]

ALIGN_TEXTURES = ("brick", "grass", "gravel")
ALIGN_DEFECTS = ("rgb_only", "aux_only", "both")
_TINTS = {"brick": (1.0, 0.62, 0.48), "grass": (0.6, 0.95, 0.45), "gravel": (0.9, 0.85, 0.75)}
_VERSION = 1


def height_from_texture(gray: np.ndarray, relief: float = 6.0, smooth: float = 1.5) -> np.ndarray:
    """``(H, W)`` brightness in [0, 1] → height field ``(H, W)`` in pixel units (bright = high)."""
    from scipy.ndimage import gaussian_filter

    return (gaussian_filter(gray.astype(np.float32), smooth) * relief).astype(np.float32)


def normals_from_height(height: np.ndarray) -> np.ndarray:
    """Height ``(H, W)`` → unit normals ``(3, H, W)`` float32 (x right, y down, z towards the camera)."""
    gy, gx = np.gradient(height.astype(np.float32))
    n = np.stack([-gx, -gy, np.ones_like(gx)])
    return (n / np.linalg.norm(n, axis=0, keepdims=True)).astype(np.float32)


def normals_to_png(n: np.ndarray) -> np.ndarray:
    """Unit normals ``(3, H, W)`` → uint8 ``(H, W, 3)`` image ``(n + 1) / 2 · 255``."""
    return (np.clip((n.transpose(1, 2, 0) + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)


def colorize(gray: np.ndarray, tint: Sequence[float]) -> np.ndarray:
    """``(H, W)`` brightness → ``(H, W, 3)`` float32 RGB in [0, 1] (brightness times a colour)."""
    return np.clip(gray[..., None] * np.asarray(tint, np.float32)[None, None], 0, 1).astype(np.float32)


def make_rgbx_defect(rng: np.random.Generator, rgb: np.ndarray, height: np.ndarray, kind: str,
                     radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add one defect of ``kind`` to a two-modality crop.

    Args:
        rng: random generator.
        rgb: ``(S, S, 3)`` float32 in [0, 1].
        height: ``(S, S)`` height field (pixel units).
        kind: ``"rgb_only"``, ``"aux_only"`` or ``"both"``.
        radius: blob radius in pixels.

    Returns:
        ``(rgb, height, mask)``; a modality the kind does not touch is returned unchanged (the same values).
    """
    from scipy.ndimage import gaussian_filter

    from .texture_demo import _blob

    if kind not in ALIGN_DEFECTS:
        raise ValueError(f"unknown defect kind {kind!r}; expected one of {ALIGN_DEFECTS}")
    size = rgb.shape[0]
    alpha = _blob(rng, size, radius)
    rgb_out, h_out = rgb, height
    if kind in ("rgb_only", "both"):
        tint = rng.uniform(0.35, 1.0, 3).astype(np.float32)
        tint /= tint.max()
        gain = rng.choice([0.6, 1.5]) * rng.uniform(0.9, 1.1)
        stained = np.clip(gaussian_filter(rgb, (1.0, 1.0, 0)) * tint[None, None] * gain, 0, 1)
        rgb_out = (rgb * (1 - alpha[..., None]) + stained * alpha[..., None]).astype(np.float32)
    if kind in ("aux_only", "both"):
        profile = gaussian_filter(alpha, max(radius / 4, 1.0))
        depth = rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.6) * radius
        h_out = (height + depth * profile).astype(np.float32)
    return rgb_out, h_out, alpha >= 0.5


def _save(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def build_align_demo(root: str | Path, classes: Sequence[str] = ALIGN_TEXTURES, n_train: int = 48,
                     n_test_good: int = 15, n_test_bad: int = 10, size: int = 64, downscale: int = 2,
                     radius: tuple[float, float] = (0.12, 0.22), relief: float = 6.0, seed: int = 0) -> Path:
    """Write (or reuse) the two-modality demo set in the generic RGB-X layout.

    Args:
        root: output folder; reused as is when its manifest matches the arguments.
        classes: scikit-image textures, one class each.
        n_train: normal training crops per class.
        n_test_good: normal test crops per class.
        n_test_bad: defective test crops per class and defect kind.
        size: crop side in pixels (after downscaling).
        downscale: the photo is shrunk by this factor first (more texture per pixel of the crop).
        radius: range of defect radii as fractions of ``size``.
        relief: height of white over black in pixels (the normals' strength).
        seed: random seed (deterministic output).

    Returns:
        ``root`` as a Path.
    """
    from skimage.transform import rescale

    from .texture_demo import _crop, _source

    root = Path(root)
    config = dict(version=_VERSION, classes=list(classes), n_train=n_train, n_test_good=n_test_good,
                  n_test_bad=n_test_bad, size=size, downscale=downscale, radius=list(radius), relief=relief,
                  seed=seed)
    manifest = root / "align_demo.json"
    if manifest.exists() and json.loads(manifest.read_text()) == config:
        return root
    rng = np.random.default_rng(seed)
    for cls in classes:
        if cls not in _TINTS:
            raise ValueError(f"unknown texture {cls!r}; expected some of {ALIGN_TEXTURES}")
        src = _source(cls)
        if downscale > 1:
            src = rescale(src, 1 / downscale, anti_aliasing=True).astype(np.float32)
        split_row = int(src.shape[0] * 0.6)

        def write(split: str, kind: str, k: int, rgb: np.ndarray, height: np.ndarray, mask=None,
                  cls: str = cls) -> None:
            base = root / cls / split / kind
            _save(base / "rgb" / f"{k:03d}.png", _u8(rgb))
            _save(base / "normals" / f"{k:03d}.png", normals_to_png(normals_from_height(height)))
            if mask is not None:
                _save(base / "gt" / f"{k:03d}.png", mask.astype(np.uint8) * 255)

        for k in range(n_train):
            g = _crop(rng, src, size, (0, split_row))
            if rng.random() < 0.5:
                g = g[:, ::-1]
            write("train", "good", k, colorize(g, _TINTS[cls]), height_from_texture(g, relief))
        for k in range(n_test_good):
            g = _crop(rng, src, size, (split_row, src.shape[0]))
            write("test", "good", k, colorize(g, _TINTS[cls]), height_from_texture(g, relief))
        for kind in ALIGN_DEFECTS:
            for k in range(n_test_bad):
                g = _crop(rng, src, size, (split_row, src.shape[0]))
                r = rng.uniform(*radius) * size
                rgb, h, mask = make_rgbx_defect(rng, colorize(g, _TINTS[cls]), height_from_texture(g, relief), kind, r)
                write("test", kind, k, rgb, h, mask)
    manifest.write_text(json.dumps(config))
    return root


def write_tiny_rgbx(root: str | Path, layout: str = "rgbx", classes: Sequence[str] = ("alpha",), n_train: int = 6,
                    n_good: int = 3, n_bad: int = 3, size: int = 32, aux_chans: int = 1, seed: int = 0) -> Path:
    """Write a tiny two-modality dataset (smooth random fields; bright rectangles in both modalities).

    Args:
        root: output folder.
        layout: ``"mulsenad"`` (``RGB/``, ``Infrared/``), ``"realiad_d3"`` (``RGB/``, ``Normals/``) or ``"rgbx"``
            (``rgb/``, ``depth/``, ``gt/``).
        classes: class names.
        n_train: normal training images per class.
        n_good: normal test images per class.
        n_bad: anomalous test images per class (type ``defect``, with masks).
        size: image side.
        aux_chans: 1 (gray) or 3 (colour / normals with a positive z) channels in the auxiliary PNGs.
        seed: random seed.

    Returns:
        ``root`` as a Path.
    """
    if layout not in ("mulsenad", "realiad_d3", "rgbx"):
        raise ValueError(f"unknown layout {layout!r}")
    root, rng = Path(root), np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size

    def sample(bad: bool):
        ph = rng.uniform(0, 6, 2)
        base = 0.5 + 0.25 * np.sin(6 * xx + ph[0]) * np.cos(4 * yy + ph[1])
        rgb = np.clip(base[..., None] * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 0.03, (size, size, 3)), 0, 1)
        aux = np.clip(1 - base + rng.normal(0, 0.03, (size, size)), 0, 1)
        mask = np.zeros((size, size), bool)
        if bad:
            h, w = rng.integers(max(2, size // 6), max(3, size // 3), 2)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            mask[y : y + h, x : x + w] = True
            rgb[mask] = 1.0
            aux[mask] = 0.0
        aux_img = _u8(aux) if aux_chans == 1 else _u8(np.dstack([aux, 1 - aux, np.ones_like(aux)]))
        return _u8(rgb), aux_img, (mask * 255).astype(np.uint8)

    for cls in classes:
        items = [("train", "good", False)] * n_train + [("test", "good", False)] * n_good
        items += [("test", "defect", True)] * n_bad
        for k, (split, kind, bad) in enumerate(items):
            rgb, aux, mask = sample(bad)
            name = f"{k:03d}.png"
            if layout == "rgbx":
                base = root / cls / split / kind
                paths = (base / "rgb" / name, base / "depth" / name, base / "gt" / name)
            else:
                aux_dir = "Infrared" if layout == "mulsenad" else "Normals"
                sub = "" if split == "train" and layout == "mulsenad" else kind
                rgb_p = root / cls / "RGB" / split / sub / name
                paths = (rgb_p, root / cls / aux_dir / split / sub / name, root / cls / "RGB" / "GT" / kind / name)
            _save(paths[0], rgb)
            _save(paths[1], aux)
            if bad:
                _save(paths[2], mask)
    return root

"""Augmentations for aligned RGB–IR detection pairs: one geometry for both images and their boxes.

Every transform is a callable ``t(sample, g) -> sample`` on a :data:`PairSample` ``(rgb, ir, target)``:

* ``rgb`` ``(3, H, W)`` float in [0, 1], ``ir`` ``(C_ir, H, W)`` float in [0, 1] (``C_ir`` 1 or 3), same ``H, W``;
* ``target`` a dict with ``boxes`` ``(N, 4)`` float32 ``x1, y1, x2, y2`` in pixels of the image and ``labels``
  ``(N,)`` int64 (other keys are carried along unchanged);
* ``g`` a :class:`torch.Generator` that draws every random choice, so a sample's augmentation is reproducible
  (the datasets seed it from the sample index and the epoch).

Geometric transforms (flips, resizing, zoom) change both images and the boxes together; photometric ones (colour
jitter) touch only the modality they name. Flips and resizing never lose a box; :class:`RandomZoom` keeps every
box whenever the boxes fit in its window.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ColorJitterRGB",
    "Compose",
    "IntensityJitterIR",
    "PairSample",
    "RandomHorizontalFlip",
    "RandomResize",
    "RandomVerticalFlip",
    "RandomZoom",
    "Resize",
    "check_sample",
    "default_train_transforms",
]

#: ``(rgb (3, H, W), ir (C_ir, H, W), target {"boxes": (N, 4) xyxy px, "labels": (N,) int64, ...})``.
PairSample = tuple[Tensor, Tensor, dict]
PairTransform = Callable[[PairSample, torch.Generator], PairSample]


def _rand(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g))


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * _rand(g)


def check_sample(sample: PairSample) -> None:
    """Raise ``ValueError`` unless ``sample`` is a well-formed :data:`PairSample`."""
    rgb, ir, target = sample
    if rgb.dim() != 3 or ir.dim() != 3:
        raise ValueError(f"rgb and ir must be (C, H, W), got {tuple(rgb.shape)} and {tuple(ir.shape)}")
    if rgb.shape[-2:] != ir.shape[-2:]:
        raise ValueError(f"the RGB {tuple(rgb.shape)} and IR {tuple(ir.shape)} images of a pair differ in size")
    boxes, labels = target.get("boxes"), target.get("labels")
    if boxes is None or labels is None:
        raise ValueError(f"target needs 'boxes' and 'labels', got keys {sorted(target)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or labels.shape != (boxes.shape[0],):
        raise ValueError(f"boxes must be (N, 4) and labels (N,), got {tuple(boxes.shape)} and {tuple(labels.shape)}")


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[PairTransform]):
        self.transforms = list(transforms)

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        for t in self.transforms:
            sample = t(sample, g)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class RandomHorizontalFlip:
    """Flip both images and the boxes left–right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        rgb, ir, target = sample
        if _rand(g) >= self.p:
            return sample
        w = rgb.shape[-1]
        b = target["boxes"].clone()
        b[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
        return rgb.flip(-1), ir.flip(-1), {**target, "boxes": b}

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    """Flip both images and the boxes up–down with probability ``p`` (the official code uses 0.3)."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        rgb, ir, target = sample
        if _rand(g) >= self.p:
            return sample
        h = rgb.shape[-2]
        b = target["boxes"].clone()
        b[:, [1, 3]] = h - target["boxes"][:, [3, 1]]
        return rgb.flip(-2), ir.flip(-2), {**target, "boxes": b}

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


def _resize_pair(sample: PairSample, h: int, w: int) -> PairSample:
    rgb, ir, target = sample
    h0, w0 = rgb.shape[-2:]
    if (h, w) == (h0, w0):
        return sample
    rgb = F.interpolate(rgb[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    ir = F.interpolate(ir[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    scale = torch.tensor([w / w0, h / h0, w / w0, h / h0], dtype=target["boxes"].dtype)
    return rgb.clamp(0, 1), ir.clamp(0, 1), {**target, "boxes": target["boxes"] * scale}


class Resize:
    """Resize both images (bilinear, antialiased) so the long side is ``size``, keeping the aspect ratio; boxes
    are scaled with them. ``square=True`` resizes to ``size × size`` instead."""

    def __init__(self, size: int, square: bool = False):
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.size, self.square = int(size), square

    def __call__(self, sample: PairSample, g: torch.Generator | None = None) -> PairSample:
        h0, w0 = sample[0].shape[-2:]
        if self.square:
            return _resize_pair(sample, self.size, self.size)
        s = self.size / max(h0, w0)
        return _resize_pair(sample, max(1, round(h0 * s)), max(1, round(w0 * s)))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, square={self.square})"


class RandomResize:
    """Scale both images and the boxes by one factor drawn uniformly from ``scale`` (the official code's scale
    augmentation is ±0.5); the detector's own transform then resizes to its input size, so this varies the
    apparent object size and the resampling."""

    def __init__(self, scale: tuple[float, float] = (0.5, 1.5)):
        lo, hi = scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = (float(lo), float(hi))

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        s = _uniform(g, *self.scale)
        h0, w0 = sample[0].shape[-2:]
        return _resize_pair(sample, max(1, round(h0 * s)), max(1, round(w0 * s)))

    def __repr__(self) -> str:
        return f"RandomResize(scale={self.scale})"


class RandomZoom:
    """Zoom both images and the boxes by one factor drawn from ``scale``, keeping the image size: below 1 the
    scaled pair is pasted at a random place on a zero canvas; above 1 a window of the scaled pair is cut out,
    placed so that every box stays inside when the boxes fit in the window (otherwise boxes are clipped to it and
    those left with no area are removed: the only case in which a box is dropped). This is the scale augmentation
    that survives the detector's own resizing to its input size."""

    def __init__(self, scale: tuple[float, float] = (0.75, 1.25)):
        lo, hi = scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = (float(lo), float(hi))

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        h0, w0 = sample[0].shape[-2:]
        s = _uniform(g, *self.scale)
        rgb, ir, t = _resize_pair(sample, max(1, round(h0 * s)), max(1, round(w0 * s)))
        h, w = rgb.shape[-2:]
        boxes, labels = t["boxes"], t["labels"]
        if h <= h0 and w <= w0:
            x0, y0 = round(_uniform(g, 0, w0 - w)), round(_uniform(g, 0, h0 - h))
            out = [torch.zeros(x.shape[0], h0, w0, dtype=x.dtype) for x in (rgb, ir)]
            for o, x in zip(out, (rgb, ir)):
                o[:, y0:y0 + h, x0:x0 + w] = x
            shift = torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
            return out[0], out[1], {**t, "boxes": boxes + shift}
        ch, cw = min(h, h0), min(w, w0)
        lo_x, lo_y, hi_x, hi_y = 0.0, 0.0, float(w - cw), float(h - ch)
        if len(boxes):   # keep every box inside the window when they fit
            bx1, by1, bx2, by2 = (float(v) for v in (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(),
                                                       boxes[:, 3].max()))
            if bx2 - bx1 <= cw and by2 - by1 <= ch:
                lo_x, hi_x = max(lo_x, bx2 - cw), min(hi_x, bx1)
                lo_y, hi_y = max(lo_y, by2 - ch), min(hi_y, by1)
        x0, y0 = int(_uniform(g, lo_x, hi_x)), int(_uniform(g, lo_y, hi_y))
        rgb, ir = rgb[:, y0:y0 + ch, x0:x0 + cw], ir[:, y0:y0 + ch, x0:x0 + cw]
        b = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
        b[:, 0::2] = b[:, 0::2].clamp(0, cw)
        b[:, 1::2] = b[:, 1::2].clamp(0, ch)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        rgb, ir, t = (rgb, ir, {**t, "boxes": b[keep], "labels": labels[keep]})
        if (ch, cw) != (h0, w0):   # one side was smaller than the original: pad it
            return self._pad((rgb, ir, t), h0, w0)
        return rgb, ir, t

    @staticmethod
    def _pad(sample: PairSample, h0: int, w0: int) -> PairSample:
        rgb, ir, t = sample
        h, w = rgb.shape[-2:]
        return F.pad(rgb, (0, w0 - w, 0, h0 - h)), F.pad(ir, (0, w0 - w, 0, h0 - h)), t

    def __repr__(self) -> str:
        return f"RandomZoom(scale={self.scale})"


def _grey(rgb: Tensor) -> Tensor:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]


class ColorJitterRGB:
    """Jitter brightness, contrast and saturation of the RGB image only (the IR image is untouched: colour means
    nothing there). Each factor is drawn from ``[1 - x, 1 + x]``."""

    def __init__(self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.5):
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        rgb, ir, target = sample
        b = _uniform(g, 1 - self.brightness, 1 + self.brightness)
        c = _uniform(g, 1 - self.contrast, 1 + self.contrast)
        s = _uniform(g, 1 - self.saturation, 1 + self.saturation)
        out = rgb * b
        out = (out - out.mean()) * c + out.mean()
        grey = _grey(out)
        out = (out - grey) * s + grey
        return out.clamp(0, 1), ir, target

    def __repr__(self) -> str:
        return f"ColorJitterRGB(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation})"


class IntensityJitterIR:
    """Jitter gain and offset of the IR image only (sensor calibration drift): ``ir * gain + offset`` with
    ``gain`` from ``[1 - gain, 1 + gain]`` and ``offset`` from ``[-offset, offset]``."""

    def __init__(self, gain: float = 0.2, offset: float = 0.05):
        self.gain, self.offset = gain, offset

    def __call__(self, sample: PairSample, g: torch.Generator) -> PairSample:
        rgb, ir, target = sample
        a, b = _uniform(g, 1 - self.gain, 1 + self.gain), _uniform(g, -self.offset, self.offset)
        return rgb, (ir * a + b).clamp(0, 1), target

    def __repr__(self) -> str:
        return f"IntensityJitterIR(gain={self.gain}, offset={self.offset})"


def default_train_transforms(hflip: float = 0.5, vflip: float = 0.0, scale: tuple[float, float] | None = (0.75, 1.25),
                             color_jitter: float = 0.3, ir_jitter: float = 0.1) -> Compose:
    """The recipe's training augmentation: flips and a random zoom shared by both images and the boxes, colour
    jitter on RGB and a gain/offset jitter on IR (each set to 0 / ``None`` to switch it off)."""
    ts: list[PairTransform] = []
    if hflip:
        ts.append(RandomHorizontalFlip(hflip))
    if vflip:
        ts.append(RandomVerticalFlip(vflip))
    if scale is not None and tuple(scale) != (1.0, 1.0):
        ts.append(RandomZoom(tuple(scale)))
    if color_jitter:
        ts.append(ColorJitterRGB(color_jitter, color_jitter, 1.5 * color_jitter))
    if ir_jitter:
        ts.append(IntensityJitterIR(ir_jitter, ir_jitter / 2))
    return Compose(ts)

"""A generated paired RGB–IR detection set that shows what fusion is for.

A night scene: the RGB image is dark (a dim, slightly blue background with low-frequency shading and sensor
noise), the IR image shows a cool background with a smooth temperature gradient and noise. Three classes:

| label | name | RGB | IR |
|---|---|---|---|
| 0 | ``person`` | invisible (unlit, the colour of the dark background) | warm upright ellipse |
| 1 | ``sign`` | brightly painted square | invisible (thermally neutral: background temperature) |
| 2 | ``car`` | lit wide rectangle (grey-white body) | warm wide rectangle |

So a detector that sees only RGB cannot find people, one that sees only IR cannot find signs, and the fused
detector can find all three (:data:`CLASS_VISIBILITY`). Each image holds 1–3 non-overlapping objects of random
classes and sizes. Images are ``(3, S, S)`` RGB and ``(1, S, S)`` IR in [0, 1]; targets as
:mod:`.rgbir_detection` gives them (``boxes`` xyxy pixels, ``labels`` int64, ``image_id``). Everything is
drawn from one seed, so two sets with different seeds are independent draws of the same distribution.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .rgbir_detection import PairDataset
from .rgbir_transforms import PairSample

__all__ = ["CLASS_NAMES", "CLASS_VISIBILITY", "SyntheticRGBIR", "make_scene", "write_yolo_layout"]

CLASS_NAMES = ("person", "sign", "car")
#: The modalities each class is visible in.
CLASS_VISIBILITY = {"person": ("ir",), "sign": ("rgb",), "car": ("rgb", "ir")}


def _smooth_noise(g: torch.Generator, channels: int, size: int, cells: int = 4) -> Tensor:
    """Low-frequency noise in [-1, 1]: a ``cells × cells`` random grid upsampled bicubically to ``size``."""
    coarse = torch.rand(1, channels, cells, cells, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(-1, 1)


def _place(g: torch.Generator, size: int, w: int, h: int, taken: list[list[int]], tries: int = 30):
    for _ in range(tries):
        x0 = int(torch.randint(1, size - w - 1, (1,), generator=g))
        y0 = int(torch.randint(1, size - h - 1, (1,), generator=g))
        box = [x0, y0, x0 + w, y0 + h]
        if all(box[2] + 2 <= b[0] or b[2] + 2 <= box[0] or box[3] + 2 <= b[1] or b[3] + 2 <= box[1] for b in taken):
            return box
    return None


def _shape_size(g: torch.Generator, label: int, size: int) -> tuple[int, int]:
    u = float(torch.rand((), generator=g))
    s = size / 64
    if label == 0:   # person: upright
        return round((7 + 4 * u) * s), round((16 + 8 * u) * s)
    if label == 1:   # sign: square
        side = round((11 + 8 * u) * s)
        return side, side
    return round((18 + 8 * u) * s), round((10 + 4 * u) * s)   # car: wide


def _ellipse_mask(h: int, w: int) -> Tensor:
    yy = (torch.arange(h, dtype=torch.float32) + 0.5 - h / 2) / (h / 2)
    xx = (torch.arange(w, dtype=torch.float32) + 0.5 - w / 2) / (w / 2)
    return ((yy[:, None] ** 2 + xx[None, :] ** 2) <= 1.0).float()


def make_scene(g: torch.Generator, size: int = 64, max_objects: int = 3) -> PairSample:
    """One ``(rgb (3, S, S), ir (1, S, S), {"boxes", "labels"})`` scene drawn from ``g``."""
    rgb = 0.08 + 0.04 * _smooth_noise(g, 1, size) + torch.tensor([0.0, 0.005, 0.03])[:, None, None]
    rgb = rgb + 0.02 * _smooth_noise(g, 3, size, cells=8)
    ir = 0.30 + 0.08 * _smooth_noise(g, 1, size, cells=3)
    n = int(torch.randint(1, max_objects + 1, (1,), generator=g))
    boxes, labels = [], []
    for _ in range(n):
        label = int(torch.randint(0, len(CLASS_NAMES), (1,), generator=g))
        w, h = _shape_size(g, label, size)
        box = _place(g, size, w, h, boxes)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        if label == 0:       # person: warm ellipse in IR only
            m = _ellipse_mask(h, w)
            heat = 0.78 + 0.12 * float(torch.rand((), generator=g))
            ir[:, y0:y1, x0:x1] = ir[:, y0:y1, x0:x1] * (1 - m) + heat * m
        elif label == 1:     # sign: saturated painted square in RGB only
            colour = torch.rand(3, generator=g) * 0.3
            colour[int(torch.randint(0, 3, (1,), generator=g))] = 0.75 + 0.2 * float(torch.rand((), generator=g))
            rgb[:, y0:y1, x0:x1] = colour[:, None, None]
            b = max(1, w // 6)   # a dark painted border ring
            rgb[:, y0 + b:y1 - b, x0 + b:x0 + 2 * b] *= 0.4
            rgb[:, y0 + b:y1 - b, x1 - 2 * b:x1 - b] *= 0.4
        else:                # car: lit body in RGB, warm body in IR
            grey = 0.55 + 0.3 * float(torch.rand((), generator=g))
            rgb[:, y0:y1, x0:x1] = torch.tensor([grey, grey, grey * 0.95])[:, None, None]
            rgb[:, y0 + (y1 - y0) // 2:y1, x0:x1] *= 0.8
            heat = 0.62 + 0.12 * float(torch.rand((), generator=g))
            ir[:, y0:y1, x0:x1] = heat
            ir[:, y0 + (y1 - y0) * 2 // 3:y1, x0:x0 + (x1 - x0) // 3] = min(heat + 0.15, 1.0)   # warm engine
        boxes.append(box)
        labels.append(label)
    rgb = rgb + 0.015 * torch.randn(rgb.shape, generator=g)
    ir = ir + 0.02 * torch.randn(ir.shape, generator=g)
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
              "labels": torch.tensor(labels, dtype=torch.int64)}
    return rgb.clamp(0, 1), ir.clamp(0, 1), target


class SyntheticRGBIR(PairDataset):
    """``n`` generated scenes from ``seed`` (:func:`make_scene`), held in memory; the same sample layout and
    interface (``class_names``, ``num_classes``, ``set_epoch``, ``ir_channels``) as
    :class:`~vision_ssm.data.rgbir_detection.RGBIRDetectionDataset`.

    Args:
        n: Number of scenes.
        size: Image side in pixels.
        seed: Generator seed (different seeds give independent sets).
        transform: Optional pair transform (:mod:`.rgbir_transforms`), seeded per sample and epoch.
        max_objects: At most this many objects per scene (at least 1).
    """

    class_names = list(CLASS_NAMES)
    ir_channels = 1

    def __init__(self, n: int, size: int = 64, seed: int = 0,
                 transform: Callable[[PairSample, torch.Generator], PairSample] | None = None, max_objects: int = 3):
        if n < 1 or size < 32:
            raise ValueError(f"need n >= 1 scenes of size >= 32 px, got n={n}, size={size}")
        g = torch.Generator().manual_seed(seed)
        self.samples = [make_scene(g, size, max_objects) for _ in range(n)]
        self.size, self.seed, self.transform, self.epoch = size, seed, transform, 0

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> PairSample:
        rgb, ir, t = self.samples[i]
        return rgb, ir, {**t, "image_id": torch.tensor(i, dtype=torch.int64)}


def write_yolo_layout(dataset: SyntheticRGBIR, root: str | Path, split: str = "train",
                      rgb_dir: str = "visible", ir_dir: str = "infrared") -> Path:
    """Write a set as PNGs in the official YOLO layout (``root/<rgb_dir>/<split>/{images,labels}``,
    ``root/<ir_dir>/<split>/images``), readable by :func:`~vision_ssm.data.rgbir_detection.yolo_rgbir`."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    dirs = [root / rgb_dir / split / "images", root / rgb_dir / split / "labels", root / ir_dir / split / "images"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        rgb, ir, t = dataset.load(i)
        stem = f"{i:06d}"
        Image.fromarray((rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(dirs[0] / f"{stem}.png")
        Image.fromarray((ir[0].numpy() * 255).round().astype(np.uint8)).save(dirs[2] / f"{stem}.png")
        h, w = rgb.shape[-2:]
        lines = []
        for (x0, y0, x1, y1), c in zip(t["boxes"].tolist(), t["labels"].tolist()):
            lines.append(f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
        (dirs[1] / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root

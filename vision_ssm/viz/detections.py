"""Detections drawn on both images of an RGB–IR pair, side by side (needs Pillow)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["draw_pair_detections"]

_PALETTE = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 120), (255, 128, 0),
            (0, 220, 220), (255, 0, 160)]
_GT = (64, 255, 64)


def _to_pil(img: Tensor):
    from PIL import Image

    a = img.detach().float().clamp(0, 1).cpu()
    a = a.expand(3, -1, -1) if a.shape[0] == 1 else a[:3]
    return Image.fromarray((a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def draw_pair_detections(rgb: Tensor, ir: Tensor, detections: dict, target: dict | None = None,
                         class_names: Sequence[str] | None = None, score_thresh: float = 0.3, scale: int = 1,
                         titles: Sequence[str] = ("RGB", "IR")) -> Image.Image:
    """Draw ground truth (green, thin) and detections (one colour per class, with name and score) on the RGB and
    the IR image of a pair, side by side.

    Args:
        rgb: ``(3, H, W)`` in [0, 1].
        ir: ``(1 | 3, H, W)`` in [0, 1], aligned with ``rgb``.
        detections: ``boxes`` ``(K, 4)`` xyxy pixels, ``scores`` ``(K,)``, ``labels`` ``(K,)``.
        target: Optional ground truth, ``boxes`` and ``labels``.
        class_names: Label names (default: the label numbers).
        score_thresh: Detections below this score are not drawn.
        scale: Enlarge the images by this integer factor first (nearest neighbour; for small images).
        titles: Captions of the two panels.

    Returns:
        A ``PIL.Image`` of size ``(2 W·scale + gap, H·scale + caption)``.
    """
    from PIL import Image, ImageDraw

    panels = []
    for img, title in zip((rgb, ir), titles):
        p = _to_pil(img)
        if scale > 1:
            p = p.resize((p.width * scale, p.height * scale), Image.NEAREST)
        d = ImageDraw.Draw(p)
        if target is not None:
            for b in (target["boxes"].detach().cpu().float() * scale).tolist():
                d.rectangle(b, outline=_GT, width=1)
        keep = detections["scores"].detach().cpu() >= score_thresh
        for b, s, lab in zip((detections["boxes"].detach().cpu().float()[keep] * scale).tolist(),
                             detections["scores"].detach().cpu()[keep].tolist(),
                             detections["labels"].detach().cpu()[keep].tolist()):
            colour = _PALETTE[int(lab) % len(_PALETTE)]
            d.rectangle(b, outline=colour, width=2)
            name = class_names[int(lab)] if class_names is not None else str(int(lab))
            d.text((b[0] + 2, max(0, b[1] - 11)), f"{name} {s:.2f}", fill=colour)
        panels.append((p, title))
    gap, cap = 6, 14
    w, h = panels[0][0].size
    out = Image.new("RGB", (2 * w + gap, h + cap), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for i, (p, title) in enumerate(panels):
        out.paste(p, (i * (w + gap), cap))
        d.text((i * (w + gap) + 2, 1), title, fill=(0, 0, 0))
    return out

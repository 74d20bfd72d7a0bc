"""Draw a scan order as a picture: the path through the pixel grid (for docs and debugging).

Needs Pillow, imported when a picture is drawn (``pip install pillow``); importing this module
does not import it.
"""
from __future__ import annotations

import colorsys
import os
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..ops import DirectionSet, get_directions

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["render_directions", "render_scan_order"]


def _pil():
    try:
        from PIL import Image, ImageDraw
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("rendering scan orders needs Pillow: pip install pillow") from e
    return Image, ImageDraw


def _colour(frac: float) -> tuple[int, int, int]:
    """Blue (start) → red (end) through cyan/green/yellow."""
    r, g, b = colorsys.hsv_to_rgb(0.66 * (1.0 - frac), 0.85, 0.9)
    return int(255 * r), int(255 * g), int(255 * b)


def _draw_panel(draw, order: Tensor, H: int, W: int, ox: int, oy: int, cell: int, title: str | None) -> None:
    s = cell
    top = oy + (int(1.6 * s) if title else 0)
    grid = (222, 222, 222)
    for i in range(H + 1):
        draw.line([(ox, top + i * s), (ox + W * s, top + i * s)], fill=grid, width=max(1, s // 16))
    for j in range(W + 1):
        draw.line([(ox + j * s, top), (ox + j * s, top + H * s)], fill=grid, width=max(1, s // 16))
    pos = order.tolist()
    L = len(pos)
    pts = [(ox + (p % W) * s + s / 2, top + (p // W) * s + s / 2) for p in pos]
    width = max(2, s // 6)
    for t in range(L - 1):
        (r0, c0), (r1, c1) = divmod(pos[t], W), divmod(pos[t + 1], W)
        jump = max(abs(r0 - r1), abs(c0 - c1)) > 1
        col = _colour(t / max(L - 2, 1))
        if jump:  # not a grid neighbour: thin grey line
            draw.line([pts[t], pts[t + 1]], fill=(150, 150, 150), width=max(1, width // 3))
        else:
            draw.line([pts[t], pts[t + 1]], fill=col, width=width)
    rad = max(3, s // 4)
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    draw.ellipse([x0 - rad, y0 - rad, x0 + rad, y0 + rad], fill=(20, 150, 60))
    draw.rectangle([x1 - rad, y1 - rad, x1 + rad, y1 + rad], fill=(200, 30, 30))
    if title:
        draw.text((ox, oy + s // 3), title, fill=(0, 0, 0), font_size=max(10, int(0.9 * s)))


def render_scan_order(
    order: str | Tensor,
    H: int,
    W: int,
    path: str | os.PathLike | None = None,
    cell: int = 24,
    title: str | None = None,
) -> PILImage:
    """Draw one scan order over an H×W grid.

    The path is coloured from blue (first step) to red (last step); a green dot marks the start and
    a red square the end. Steps between non-neighbouring pixels (e.g. the jumps of a filtered
    Hilbert curve) are drawn as thin grey lines.

    Args:
        order: A family name (its base order, :func:`vision_ssm.ops.scan_order`) or a ``(H*W,)``
            tensor of raster indices in visit order.
        H: Grid height.
        W: Grid width.
        path: If given, the PNG is written there.
        cell: Pixel size of one grid cell.
        title: Text above the grid (default: the family name, if ``order`` is one; ``""`` for none).

    Returns:
        The picture.
    """
    if isinstance(order, str):
        title = order if title is None else title
        order = get_directions(order, H, W, 1).index[0]
    order = torch.as_tensor(order).reshape(-1).cpu()
    if order.numel() != H * W:
        raise ValueError(f"order has {order.numel()} entries, the grid {H}x{W} has {H * W}")
    Image, ImageDraw = _pil()
    pad = cell // 2
    head = int(1.6 * cell) if title else 0
    img = Image.new("RGB", (W * cell + 2 * pad, H * cell + head + 2 * pad), "white")
    _draw_panel(ImageDraw.Draw(img), order, H, W, pad, pad, cell, title)
    if path is not None:
        img.save(os.fspath(path))
    return img


def render_directions(
    dirs: DirectionSet | str,
    H: int | None = None,
    W: int | None = None,
    num_directions: int | None = None,
    path: str | os.PathLike | None = None,
    cell: int = 16,
    columns: int | None = None,
    titles: list[str] | None = None,
) -> PILImage:
    """Draw every direction of a direction set, one panel per direction (titled ``k``).

    Args:
        dirs: A :class:`~vision_ssm.ops.DirectionSet`, or a family name (then ``H``, ``W`` and
            ``num_directions`` are required).
        H: Grid height (only with a family name).
        W: Grid width (only with a family name).
        num_directions: K (only with a family name).
        path: If given, the PNG is written there.
        cell: Pixel size of one grid cell.
        columns: Panels per row (default: K, or 4 when K = 8).
        titles: One title per panel (default ``"<name> k=<k>"``).

    Returns:
        The picture.
    """
    if not isinstance(dirs, DirectionSet):
        if H is None or W is None or num_directions is None:
            raise ValueError("with a family name, H, W and num_directions are required")
        dirs = get_directions(dirs, H, W, num_directions)
    H, W, K = dirs.H, dirs.W, dirs.K
    columns = columns or (4 if K == 8 else K)
    rows = -(-K // columns)
    Image, ImageDraw = _pil()
    pad = cell
    pw, ph = W * cell + pad, H * cell + int(1.6 * cell) + pad
    img = Image.new("RGB", (columns * pw + pad, rows * ph + pad), "white")
    draw = ImageDraw.Draw(img)
    index = dirs.index.cpu()
    for k in range(K):
        r, c = divmod(k, columns)
        title = titles[k] if titles is not None else f"{dirs.name} k={k}"
        _draw_panel(draw, index[k], H, W, pad + c * pw, pad + r * ph, cell, title)
    if path is not None:
        img.save(os.fspath(path))
    return img

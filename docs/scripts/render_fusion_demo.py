"""Stack the demo's test-set pictures of the three detectors (fused, RGB only, IR only) into one PNG.

Usage: ``python docs/scripts/render_fusion_demo.py runs/demo_fusion docs/assets/fusion_demo_detections.png 0 3``
(the demo output folder, the PNG to write, then the indices of the test pairs to show).
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def main(run: str, dst: str, *indices: str) -> None:
    rows = []
    for i in indices or ("0",):
        row = [Image.open(Path(run) / m / "pictures_test" / f"{int(i):06d}.png").convert("RGB")
               for m in ("fused", "rgb", "ir") if (Path(run) / m).is_dir()]
        w = sum(p.width for p in row) + 12 * (len(row) - 1)
        img = Image.new("RGB", (w, row[0].height), (255, 255, 255))
        x = 0
        for p in row:
            img.paste(p, (x, 0))
            x += p.width + 12
        rows.append(img)
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + 8 * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 8
    out.save(dst, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

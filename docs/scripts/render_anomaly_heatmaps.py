"""Tile heatmap panels written by the anomaly recipe into one picture for the docs.

Usage::

    python docs/scripts/render_anomaly_heatmaps.py OUT.png RUN_DIR:CLASS/NAME [RUN_DIR:CLASS/NAME ...]

Each argument names one ``RUN_DIR/heatmaps/CLASS/NAME.png`` panel (image | ground truth | overlay);
the panels are stacked top to bottom with a thin white gap.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str]) -> int:
    out, specs = Path(argv[0]), argv[1:]
    rows = []
    for spec in specs:
        run, name = spec.split(":", 1)
        panel = np.asarray(Image.open(Path(run) / "heatmaps" / f"{name}.png").convert("RGB"))
        rows += [panel, np.full((4, panel.shape[1], 3), 255, np.uint8)]
    Image.fromarray(np.concatenate(rows[:-1])).save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

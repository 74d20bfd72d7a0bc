"""Compose docs/assets/mambaalign_demo_heatmaps.png from a ``python -m vision_ssm demo-align`` output folder.

Usage: ``python docs/scripts/render_align_heatmaps.py runs/demo_align docs/assets/mambaalign_demo_heatmaps.png``.
Rows: (class, defect) samples; each shows the RGB + normals model's panel (RGB | normals | ground truth | map)
above the RGB-only model's panel of the same image (RGB | ground truth | map), maps 4x enlarged.
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = [("brick", "aux_only_000"), ("gravel", "aux_only_000"), ("gravel", "rgb_only_000"),
           ("grass", "both_000"), ("brick", "good_000")]


def main(run: str, dst: str) -> None:
    rows = []
    for cls, name in SAMPLES:
        a = np.asarray(Image.open(Path(run) / "rgbx" / "heatmaps" / cls / f"{name}.png").convert("RGB"))
        b = np.asarray(Image.open(Path(run) / "rgb" / "heatmaps" / cls / f"{name}.png").convert("RGB"))
        b = np.concatenate([b, np.full((b.shape[0], a.shape[1] - b.shape[1], 3), 255, np.uint8)], axis=1)
        rows += [a, b, np.full((6, a.shape[1], 3), 255, np.uint8)]
    img = Image.fromarray(np.concatenate(rows[:-1], axis=0))
    img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Tiny on-disk paired RGB–IR detection sets in the YOLO, VOC and COCO layouts, for the data tests.

Every pair holds bright rectangles at the annotated boxes in both images (RGB and IR), on a dark background, so a
test can find the boxes again in the pixels after an augmentation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Per pair: (stem, H, W, [(class, x1, y1, x2, y2), ...]).
PAIRS = [
    ("000001", 40, 56, [(0, 4, 6, 20, 30), (1, 30, 10, 50, 22)]),
    ("000002", 40, 56, [(1, 10, 12, 26, 36)]),
    ("000003", 40, 56, []),
]
NAMES = ["person", "car"]


def _images(h: int, w: int, objs) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((h, w, 3), 10, np.uint8)
    ir = np.full((h, w), 20, np.uint8)
    for c, x1, y1, x2, y2 in objs:
        rgb[y1:y2, x1:x2] = (200, 100 + 50 * c, 50)
        ir[y1:y2, x1:x2] = 220
    return rgb, ir


def _save(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_yolo(root: Path, split: str = "train", rgb_dir: str = "visible", ir_dir: str = "infrared") -> Path:
    for stem, h, w, objs in PAIRS:
        rgb, ir = _images(h, w, objs)
        _save(rgb, root / rgb_dir / split / "images" / f"{stem}.png")
        _save(ir, root / ir_dir / split / "images" / f"{stem}.png")
        lab = root / rgb_dir / split / "labels" / f"{stem}.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text("".join(f"{c} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}\n"
                               for c, x1, y1, x2, y2 in objs))
    return root


def write_voc(root: Path, split: str = "train") -> Path:
    for stem, h, w, objs in PAIRS:
        rgb, ir = _images(h, w, objs)
        _save(rgb, root / "visible" / split / f"{stem}.jpg")
        _save(np.repeat(ir[..., None], 3, 2), root / "infrared" / split / f"{stem}.jpg")
        body = "".join(f"<object><name>{NAMES[c]}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
                       f"<ymax>{y2}</ymax></bndbox></object>" for c, x1, y1, x2, y2 in objs)
        xml = root / "Annotations" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(f"<annotation><filename>{stem}.jpg</filename><size><width>{w}</width><height>{h}</height>"
                       f"<depth>3</depth></size>{body}</annotation>")
    return root


def write_coco(root: Path, split: str = "train") -> Path:
    images, anns = [], []
    for i, (stem, h, w, objs) in enumerate(PAIRS):
        rgb, ir = _images(h, w, objs)
        _save(rgb, root / "visible" / split / f"{stem}.png")
        _save(ir, root / "infrared" / split / f"{stem}.png")
        images.append({"id": 100 + i, "file_name": f"{stem}.png", "height": h, "width": w})
        for c, x1, y1, x2, y2 in objs:
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": [3, 7][c],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": 7, "name": "car"}, {"id": 3, "name": "person"}]   # unsorted ids: mapped to 0, 1 by id
    ann = root / "annotations" / f"{split}.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root

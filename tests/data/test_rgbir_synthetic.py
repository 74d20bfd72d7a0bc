"""The generated fusion set: each class is visible exactly in the modalities :data:`CLASS_VISIBILITY` says."""
from __future__ import annotations

import torch

from vision_ssm.data.rgbir_synthetic import CLASS_NAMES, CLASS_VISIBILITY, SyntheticRGBIR, write_yolo_layout


def _contrast(img: torch.Tensor, box: list[int], ring: int = 3) -> float:
    """|mean inside the box − mean of a ring around it|, over channels (max)."""
    x1, y1, x2, y2 = box
    h, w = img.shape[-2:]
    outer = img[:, max(0, y1 - ring):min(h, y2 + ring), max(0, x1 - ring):min(w, x2 + ring)]
    inner = img[:, y1:y2, x1:x2]
    ring_mean = (outer.sum((1, 2)) - inner.sum((1, 2))) / (outer[0].numel() - inner[0].numel())
    return float((inner.mean((1, 2)) - ring_mean).abs().max())


def test_each_class_is_visible_only_where_it_should_be():
    ds = SyntheticRGBIR(60, 64, seed=5)
    seen = {n: {"rgb": [], "ir": []} for n in CLASS_NAMES}
    for i in range(len(ds)):
        rgb, ir, t = ds[i]
        assert rgb.shape == (3, 64, 64) and ir.shape == (1, 64, 64) and len(t["labels"]) >= 1
        for box, lab in zip(t["boxes"].int().tolist(), t["labels"].tolist()):
            seen[CLASS_NAMES[lab]]["rgb"].append(_contrast(rgb, box))
            seen[CLASS_NAMES[lab]]["ir"].append(_contrast(ir, box))
    for name, vis in CLASS_VISIBILITY.items():
        for mod in ("rgb", "ir"):
            c = torch.tensor(seen[name][mod])
            assert len(c) > 10
            if mod in vis:
                assert c.min() > 0.2, (name, mod, c.min())        # clearly visible in every instance
            else:
                assert c.max() < 0.06, (name, mod, c.max())       # lost in the background's own variation


def test_seeds_give_independent_reproducible_sets(tmp_path):
    a, b, c = SyntheticRGBIR(4, 48, seed=0), SyntheticRGBIR(4, 48, seed=0), SyntheticRGBIR(4, 48, seed=1)
    assert torch.equal(a[0][0], b[0][0]) and not torch.equal(a[0][0], c[0][0])
    from vision_ssm.data.rgbir_detection import yolo_rgbir

    ds = yolo_rgbir(write_yolo_layout(a, tmp_path), "train", class_names=list(CLASS_NAMES), ir_channels=1)
    rgb, ir, t = ds[2]
    torch.testing.assert_close(rgb, a[2][0], atol=1 / 255, rtol=0)
    torch.testing.assert_close(t["boxes"], a[2][2]["boxes"], atol=1e-3, rtol=0)
    assert torch.equal(t["labels"], a[2][2]["labels"])

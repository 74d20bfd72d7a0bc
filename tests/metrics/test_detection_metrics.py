"""COCO mAP through pycocotools: perfect, empty and mislabelled detections, classes without ground truth."""
from __future__ import annotations

import math

import pytest
import torch

from vision_ssm.metrics.detection import DetectionEvaluator, coco_map

pytest.importorskip("pycocotools")


def _targets():
    return [{"boxes": torch.tensor([[2.0, 2, 20, 20], [30, 30, 50, 44]]), "labels": torch.tensor([0, 1])},
            {"boxes": torch.tensor([[5.0, 8, 25, 30]]), "labels": torch.tensor([0])}]


def _dets(targets, labels=None, shift=0.0):
    return [{"boxes": t["boxes"] + shift, "scores": torch.linspace(0.9, 0.5, len(t["labels"])),
             "labels": t["labels"] if labels is None else labels(t["labels"])} for t in targets]


def test_perfect_detections_score_one_and_absent_classes_are_nan():
    t = _targets()
    r = coco_map(_dets(t), t, 3, ["a", "b", "c"])
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(1.0) and r["num_gt"] == 3
    assert r["per_class"]["a"]["num_gt"] == 2 and math.isnan(r["per_class"]["c"]["ap50"])


def test_wrong_labels_empty_and_shifted_detections():
    t = _targets()
    swapped = coco_map(_dets(t, labels=lambda lab: 1 - lab), t, 2)
    assert swapped["map50"] == 0.0
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    assert coco_map(empty, t, 2)["map50"] == 0.0
    r = coco_map(_dets(t, shift=3.0), t, 2)   # IoU between 0.5 and 0.95: full AP50, lower AP50:95
    assert r["map50"] == pytest.approx(1.0) and 0.0 < r["map"] < 0.9


def test_evaluator_accumulates_batches_and_checks_labels():
    t = _targets()
    ev = DetectionEvaluator(2)
    for p, g in zip(_dets(t), t):
        ev.update([p], [g])
    assert ev.compute()["map50"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside 0"):
        coco_map(_dets(t), t, 1)

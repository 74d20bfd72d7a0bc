"""Detection metrics by pycocotools: mAP50, mAP75, mAP50:95 and per-class AP.

The computation is pycocotools' ``COCOeval`` (101-point interpolated precision envelope, greedy matching by
score, IoU thresholds 0.50:0.05:0.95, area range "all"); this module only converts torchvision-style
predictions and targets into its format and reads its ``precision`` array. Install with the ``detection``
extra (``pip install "vision-ssm[detection]"``).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from torch import Tensor

__all__ = ["DetectionEvaluator", "coco_map", "require_pycocotools"]


def require_pycocotools():
    """Import pycocotools' ``COCO`` and ``COCOeval``, or raise a ``ModuleNotFoundError`` naming the extra."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("detection metrics need pycocotools: pip install 'vision-ssm[detection]'") from e
    return COCO, COCOeval


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = boxes.reshape(-1, 4).astype(np.float64)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)


def coco_map(predictions: Sequence[dict], targets: Sequence[dict], num_classes: int,
             class_names: Sequence[str] | None = None, max_detections: int = 100) -> dict:
    """COCO-style AP of detections against ground truth, per image lists in torchvision's format.

    Args:
        predictions: One dict per image: ``boxes`` ``(K, 4)`` xyxy pixels, ``scores`` ``(K,)``, ``labels`` ``(K,)``.
        targets: One dict per image (same order): ``boxes`` ``(N, 4)`` xyxy pixels, ``labels`` ``(N,)``.
        num_classes: Labels are ``0 … num_classes − 1``.
        class_names: Names for the per-class entries (default ``"0"``, ``"1"``, …).
        max_detections: Detections per image counted (the highest scores).

    Returns:
        ``{"map50", "map75", "map" (50:95), "per_class": {name: {"ap50", "ap", "num_gt"}}, "num_images",
        "num_gt"}``. The means are over classes with at least one ground-truth box; a class without any has
        ``ap50 = ap = nan`` and is left out of the means (pycocotools' convention). All values in [0, 1].
    """
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets (one each per image)")
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for num_classes={num_classes}")
    COCO, COCOeval = require_pycocotools()
    images, anns, dets = [], [], []
    num_gt = np.zeros(num_classes, np.int64)
    for img_id, (p, t) in enumerate(zip(predictions, targets)):
        images.append({"id": img_id})
        tl = _np(t["labels"]).astype(np.int64)
        if len(tl) and (tl.min() < 0 or tl.max() >= num_classes):
            raise ValueError(f"image {img_id}: target label {int(tl.max())} is outside 0 … {num_classes - 1}")
        for box, lab in zip(_xywh(_np(t["boxes"])), tl):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(lab), "bbox": box.tolist(),
                         "area": float(box[2] * box[3]), "iscrowd": 0})
            num_gt[lab] += 1
        for box, s, lab in zip(_xywh(_np(p["boxes"])), _np(p["scores"]), _np(p["labels"]).astype(np.int64)):
            dets.append({"image_id": img_id, "category_id": int(lab), "bbox": box.tolist(), "score": float(s)})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:
            dt.dataset = {"images": images, "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, max_detections]
        ev.params.catIds = list(range(num_classes))
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]   # (T=10 IoUs, R=101 recalls, K classes) at area "all"
    iou = ev.params.iouThrs

    def ap(t_idx, k):
        p = prec[t_idx, :, k]
        return float(np.mean(p)) if (p > -1).all() and num_gt[k] > 0 else float("nan")

    t50, t75 = int(np.argmin(np.abs(iou - 0.5))), int(np.argmin(np.abs(iou - 0.75)))
    per_class = {}
    for k, n in enumerate(names):
        ap_all = [ap(t, k) for t in range(len(iou))]
        per_class[n] = {"ap50": ap(t50, k), "ap75": ap(t75, k),
                        "ap": float(np.mean(ap_all)) if num_gt[k] else float("nan"), "num_gt": int(num_gt[k])}
    present = [v for v in per_class.values() if v["num_gt"] > 0]

    def mean(key):
        return float(np.mean([v[key] for v in present])) if present else float("nan")

    return {"map50": mean("ap50"), "map75": mean("ap75"), "map": mean("ap"), "per_class": per_class,
            "num_images": len(targets), "num_gt": int(num_gt.sum())}


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


class DetectionEvaluator:
    """Accumulate predictions and targets batch by batch, then :meth:`compute` :func:`coco_map`.

    Boxes are moved to the CPU as they arrive, so a long evaluation keeps no GPU memory.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, max_detections: int = 100):
        self.num_classes, self.class_names, self.max_detections = num_classes, class_names, max_detections
        self.predictions: list[dict] = []
        self.targets: list[dict] = []

    def update(self, predictions: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets")
        for p, t in zip(predictions, targets):
            self.predictions.append({k: _np(p[k]) for k in ("boxes", "scores", "labels")})
            self.targets.append({k: _np(t[k]) for k in ("boxes", "labels")})

    def compute(self) -> dict:
        return coco_map(self.predictions, self.targets, self.num_classes, self.class_names, self.max_detections)

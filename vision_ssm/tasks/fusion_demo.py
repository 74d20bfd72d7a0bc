"""``python -m vision_ssm demo-fusion``: what RGB–IR fusion is for, on CPU in minutes.

Generates a paired night-scene set (:mod:`vision_ssm.data.rgbir_synthetic`: people visible only in IR, painted
signs only in RGB, cars in both), trains the same Fusion-Mamba detector three times with the ordinary recipe
(:func:`vision_ssm.tasks.detection.train`): on both images (``fused``), on RGB only and on IR only (the other
image blanked), and reports mAP50, mAP50:95 and per-class AP50 of all three on two generated evaluation sets:

* the **tuning** set (``--tune-seed``), on which the defaults below were chosen;
* the **test** set (``--test-seed``), an independent draw used only for the reported numbers.

Nothing is downloaded. Defaults (see ``docs/tasks/detection.md`` for the measurements): ``test_fusion_mamba``
backbone (timm ``test_resnet`` streams, 1-channel IR), FPN/head width 64 with 2 convolutions per FCOS branch,
64×64 images, AdamW.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

__all__ = ["DEMO_DEFAULTS", "TARGETS", "add_fusion_demo_arguments", "run_fusion_demo"]

#: Training settings of the demo (chosen on the tuning set).
DEMO_DEFAULTS = {"epochs": 8, "batch_size": 4, "lr": 3e-3, "n_train": 96, "n_eval": 64, "image_size": 64,
                 "fpn_channels": 64, "head_convs": 2}
#: The fused detector's mAP50 floor and its margin over each single-modality detector.
TARGETS = {"fused_map50": 0.5, "margin": 0.1}


def add_fusion_demo_arguments(p: argparse.ArgumentParser) -> None:
    """Add the demo's options to a parser."""
    d = DEMO_DEFAULTS
    p.add_argument("--output", default="runs/demo_fusion", help="output folder (checkpoints, results, pictures)")
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--n-train", type=int, default=d["n_train"], help="generated training pairs")
    p.add_argument("--n-eval", type=int, default=d["n_eval"], help="generated pairs in each evaluation set")
    p.add_argument("--image-size", type=int, default=d["image_size"])
    p.add_argument("--fpn-channels", type=int, default=d["fpn_channels"])
    p.add_argument("--head-convs", type=int, default=d["head_convs"])
    p.add_argument("--modalities", default="fused,rgb,ir", help="comma-separated subset of fused,rgb,ir")
    p.add_argument("--train-seed", type=int, default=0, help="generator seed of the training set")
    p.add_argument("--tune-seed", type=int, default=1, help="generator seed of the tuning set")
    p.add_argument("--test-seed", type=int, default=2, help="generator seed of the reported test set")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, shuffling and augmentation")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch and of the numba scan (default: theirs; use 1 on a busy machine)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")


def _table(results: dict[str, dict], which: str) -> str:
    names = list(next(iter(results.values()))[which]["per_class"])
    head = f"{'detector':<10}{'mAP50':>8}{'mAP50:95':>10}" + "".join(f"{'AP50 ' + n:>14}" for n in names)
    rows = [head]
    for mod, r in results.items():
        e = r[which]
        rows.append(f"{mod:<10}{100 * e['map50']:>8.1f}{100 * e['map']:>10.1f}"
                    + "".join(f"{100 * e['per_class'][n]['ap50']:>14.1f}" for n in names))
    return "\n".join(rows)


def run_fusion_demo(args: argparse.Namespace) -> dict:
    """Generate the sets, train one detector per modality, evaluate all on both sets, print and save the tables.

    Returns:
        ``{modality: {"tune": results, "test": results, "train_seconds", "train_cpu_seconds"}, "targets": ...}``.
    """
    import torch

    from ..data.rgbir_synthetic import SyntheticRGBIR
    from ..metrics.detection import require_pycocotools

    require_pycocotools()   # the evaluation needs it: fail before training, not after it
    from ..data.rgbir_transforms import Compose, RandomHorizontalFlip
    from .detection import DetectionConfig, evaluate, train

    if args.threads:
        _set_threads(args.threads)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    out = Path(args.output)
    t0, c0 = time.perf_counter(), time.process_time()
    size = args.image_size
    train_set = SyntheticRGBIR(args.n_train, size, seed=args.train_seed, transform=Compose([RandomHorizontalFlip()]))
    sets = {"tune": SyntheticRGBIR(args.n_eval, size, seed=args.tune_seed),
            "test": SyntheticRGBIR(args.n_eval, size, seed=args.test_seed)}
    results: dict = {}
    for mod in modalities:
        cfg = DetectionConfig(
            model="test_fusion_mamba", fpn_channels=args.fpn_channels, head_convs=args.head_convs, image_size=size,
            modality=mod, epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=args.lr,
            weight_decay=0.05, warmup_iters=20, lrf=0.05, output=str(out / mod), device=args.device, seed=args.seed,
            eval_batch_size=32, score_thresh=0.01, num_pictures=6, progress=not args.no_progress)
        ts, tc = time.perf_counter(), time.process_time()
        hist = train(cfg, train_set, None)["history"]
        model = _load_last(cfg, train_set.num_classes)
        r = {"train_seconds": round(time.perf_counter() - ts, 1),
             "train_cpu_seconds": round(time.process_time() - tc, 1),
             "loss_first_epoch": hist[0]["loss"], "loss_last_epoch": hist[-1]["loss"]}
        for which, ds in sets.items():
            r[which] = evaluate(model, ds, mod, batch_size=32, device=args.device,
                                pictures=out / mod / f"pictures_{which}" if which == "test" else None, num_pictures=6)
        results[mod] = r
        print(f"{mod}: trained in {r['train_seconds']:.0f}s; test mAP50 {100 * r['test']['map50']:.1f}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = {"results": results, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
               "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
               "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "args": vars(args)}
    if {"fused", "rgb", "ir"} <= set(results):
        f = results["fused"]["test"]["map50"]
        margin = f - max(results["rgb"]["test"]["map50"], results["ir"]["test"]["map50"])
        summary["targets"] = {**TARGETS, "fused_map50_test": f, "margin_test": margin,
                              "met": bool(f >= TARGETS["fused_map50"] and margin >= TARGETS["margin"])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2))
    for which, seed in (("tune", args.tune_seed), ("test", args.test_seed)):
        print(f"\n{which} set (generator seed {seed}, {args.n_eval} pairs), AP in %:")
        print(_table(results, which))
    print(f"\ndemo finished in {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU time "
          f"({torch.get_num_threads()} torch threads); pictures in {out}/<detector>/pictures_test")
    if "targets" in summary:
        t = summary["targets"]
        print(f"target: fused mAP50 >= {100 * TARGETS['fused_map50']:.0f} and >= {100 * TARGETS['margin']:.0f} "
              f"above each single modality -> fused {100 * t['fused_map50_test']:.1f}, margin "
              f"{100 * t['margin_test']:.1f}: {'met' if t['met'] else 'NOT met'}")
    return summary


def _set_threads(n: int) -> None:
    """Set torch's and numba's CPU threads (numba's worker threads oversubscribe a busy machine badly)."""
    import torch

    torch.set_num_threads(n)
    try:
        import numba
    except ModuleNotFoundError:
        return
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def _load_last(cfg, num_classes: int):
    from .detection import build_detector, load_weights

    model = build_detector(cfg, num_classes)
    load_weights(model, Path(cfg.output) / "last.safetensors")
    return model

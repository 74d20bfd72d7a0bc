"""Train MambaAlign (RGB + infrared / depth / normals) on synthetic anomalies; evaluate with the seven metrics.

A thin command line over :func:`vision_ssm.tasks.mambaalign.train_align`. Examples::

    # MulSen-AD, one object, upstream's recipe (512x512, 300 epochs, batch 8, AMP on CUDA), infrared as 1 channel
    python examples/anomaly/train_mambaalign.py --data-root data/MulSen_AD --layout mulsenad --classes capsule \\
        --model mambaalign_wide_resnet50 --image-size 512 --epochs 300 --output runs/align_capsule --device cuda

    # Real-IAD D3 with pseudo-3D normals (unit vectors), 200 epochs
    python examples/anomaly/train_mambaalign.py --data-root data/RealIAD_D3 --layout realiad_d3 \\
        --classes some_category --model mambaalign_wide_resnet50 --image-size 512 --epochs 200 \\
        --output runs/align_d3 --device cuda

    # the RGB-only baseline of the same model
    python examples/anomaly/train_mambaalign.py ... --rgb-only

Outputs (``--output``): last.safetensors, last_state.pt (for --resume), results.json / .csv (per class and
"mean"), results_by_defect.json, history.csv, heatmaps/<class>/*.png (RGB | aux | ground truth | map).
"""
from __future__ import annotations

import argparse
import json
import sys

from vision_ssm.tasks.mambaalign import AlignConfig, train_align
from vision_ssm.tasks.mambaalign_losses import SynthConfig


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared with eval_mambaalign.py (data and model)."""
    p.add_argument("--data-root", required=True)
    p.add_argument("--layout", required=True, choices=["mulsenad", "realiad_d3", "rgbx"])
    p.add_argument("--classes", default=None, help="comma-separated objects / categories (default: all)")
    p.add_argument("--aux-kind", default=None, choices=["gray", "color", "normals", "depth"],
                   help="default: gray (MulSen-AD infrared), normals (Real-IAD D3), depth (rgbx)")
    p.add_argument("--folders", default="{}",
                   help='JSON folder names, e.g. \'{"aux_folder": "IR"}\' or \'{"aux_dirnames": ["P3D"]}\'')
    p.add_argument("--rgb-only", action="store_true", help="the RGB-only baseline (aux_chans=0)")
    p.add_argument("--model", default="mambaalign_resnet18")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of timm.create_model")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--image-score", default="head", choices=["head", "map_max"])
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--amp", default=None, action=argparse.BooleanOptionalAction, help="default: on for CUDA")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--num-heatmaps", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")


def common_config(a: argparse.Namespace, **kw) -> AlignConfig:
    return AlignConfig(data_root=a.data_root, layout=a.layout, classes=a.classes.split(",") if a.classes else None,
                       aux_kind=a.aux_kind, folders=json.loads(a.folders), rgb_only=a.rgb_only, model=a.model,
                       model_kwargs=json.loads(a.model_kwargs), image_size=a.image_size, image_score=a.image_score,
                       device=a.device, amp=a.amp, eval_batch_size=a.eval_batch_size, num_heatmaps=a.num_heatmaps,
                       progress=not a.no_progress, output=a.output, **kw)


def parse_args(argv=None) -> AlignConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--output", required=True)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4, help="base lr (backbone x backbone_lr_mult)")
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--backbone-weights", default=None, help="'offline' (EfficientNet-Lite backbones) or a file")
    p.add_argument("--no-augment", action="store_true", help="no paired flips")
    p.add_argument("--synth-prob", type=float, default=0.5)
    p.add_argument("--synth-std", type=float, default=0.2)
    p.add_argument("--synth-noise", default="white", choices=["white", "smooth", "mixed"])
    p.add_argument("--modality-mix", action="store_true", help="perturb RGB only / aux only / both per sample")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/last_state.pt")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    synth = SynthConfig(prob=a.synth_prob, std=a.synth_std, noise=a.synth_noise, modality_mix=a.modality_mix)
    return common_config(a, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                         backbone_weights=a.backbone_weights, augment=not a.no_augment, synth=synth, resume=a.resume,
                         eval_every=a.eval_every, num_workers=a.workers, seed=a.seed)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    train_align(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

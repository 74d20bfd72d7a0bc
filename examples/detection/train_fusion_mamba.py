"""Train the Fusion-Mamba RGB-IR detector (FCOS or RetinaNet on the dual-stream backbone) on a paired set.

A thin command line over :func:`vision_ssm.tasks.detection.train`. Examples (docs/tasks/detection.md)::

    # LLVIP as shipped (Pascal VOC XML), 640 px, the official SGD recipe on a GPU
    python examples/detection/train_fusion_mamba.py --data-root data/LLVIP --format voc --classes person \\
        --train-split train --val-split test --model fusion_mamba_cs3darknet_l --epochs 150 --batch-size 8 \\
        --amp --output runs/fm_llvip --device cuda

    # the official YOLO-txt layout (visible/ and infrared/ folders), e.g. M3FD, one modality only
    python examples/detection/train_fusion_mamba.py --data-root data/M3FD --format yolo \\
        --classes People,Car,Bus,Motorcycle,Lamp,Truck --modality ir --output runs/fm_m3fd_ir --device cuda

Outputs (``--output``): last/best.safetensors, last_state.pt (for --resume), config.json, results.json/.csv
(mAP50, mAP75, mAP50:95, per-class AP), history.csv, pictures/*.png (detections on the RGB and the IR image).
"""
from __future__ import annotations

import argparse
import json
import sys

from vision_ssm.tasks.detection import MODALITIES, DetectionConfig, format_results, train


def parse_args(argv=None) -> DetectionConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="dataset root")
    p.add_argument("--format", default="yolo", choices=["yolo", "voc", "coco"], help="label layout")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="test", help="evaluation split ('' for none)")
    p.add_argument("--rgb-dir", default="visible")
    p.add_argument("--ir-dir", default="infrared")
    p.add_argument("--classes", default=None, help="comma-separated class names in label order")
    p.add_argument("--data-kwargs", default="{}", help='JSON for the dataset builder, e.g. \'{"ann_file": "a.json"}\'')
    p.add_argument("--model", default="fusion_mamba_cs3darknet_s",
                   help="fusion_mamba_cs3darknet_l (official widths) | fusion_mamba_cs3darknet_s | test_fusion_mamba")
    p.add_argument("--model-kwargs", default="{}", help='JSON, e.g. \'{"official": true, "pretrained_streams": true}\'')
    p.add_argument("--head", default="fcos", choices=["fcos", "retinanet"])
    p.add_argument("--fpn-channels", type=int, default=256)
    p.add_argument("--head-convs", type=int, default=4)
    p.add_argument("--image-size", type=int, default=640)
    p.add_argument("--modality", default="fused", choices=MODALITIES,
                   help="fused: both images; rgb / ir: the same detector with the other image blanked")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.937)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-iters", type=int, default=1000)
    p.add_argument("--lrf", type=float, default=0.2, help="final lr as a fraction of --lr (cosine)")
    p.add_argument("--vflip", type=float, default=0.0, help="vertical-flip probability (official: 0.3)")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/last_state.pt")
    p.add_argument("--stop-after-epochs", type=int, default=None, help="end this run early (resume later)")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--output", required=True)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-pictures", type=int, default=8)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    return DetectionConfig(
        data_root=a.data_root, data_format=a.format, train_split=a.train_split, val_split=a.val_split or None,
        rgb_dir=a.rgb_dir, ir_dir=a.ir_dir, class_names=a.classes.split(",") if a.classes else None,
        data_kwargs=json.loads(a.data_kwargs), model=a.model, model_kwargs=json.loads(a.model_kwargs), head=a.head,
        fpn_channels=a.fpn_channels, head_convs=a.head_convs, image_size=a.image_size, modality=a.modality,
        epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, momentum=a.momentum,
        weight_decay=a.weight_decay, warmup_iters=a.warmup_iters, lrf=a.lrf, vflip=a.vflip, amp=a.amp,
        resume=a.resume, stop_after_epochs=a.stop_after_epochs, eval_every=a.eval_every,
        eval_batch_size=a.eval_batch_size, output=a.output, device=a.device, num_workers=a.workers, seed=a.seed,
        num_pictures=a.num_pictures, progress=not a.no_progress,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    res = train(parse_args(argv))
    if "per_class" in res:
        print(format_results(res, f"modality {res['modality']}, AP in %:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

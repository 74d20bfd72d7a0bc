"""Train an image classifier (any timm / vision_ssm model) on an ImageFolder: one process or under torchrun.

A thin command line over :func:`vision_ssm.tasks.classification.train`; every flag is a field of
:class:`~vision_ssm.tasks.classification_config.ClassificationConfig`, ``--config`` reads a YAML preset and flags
given on the command line override it. Examples::

    # the digits recipe on CPU (export the data once with export_digits.py)
    python examples/classification/train.py --config examples/classification/configs/digits.yaml

    # one node, 8 GPUs (DDP); the preset's batch_size is per process
    torchrun --nproc_per_node=8 examples/classification/train.py \\
        --config examples/classification/configs/mambavision_tiny.yaml --data-root /data/imagenet

    # resume, fine-tune with a new head
    python examples/classification/train.py --config ... --output runs/x --resume
    python examples/classification/train.py --model vmamba_tiny_s1l8 --finetune in1k.safetensors \\
        --data-root data/flowers --epochs 30 --lr 1e-4

Outputs (``--output``): last.safetensors, last_ema.safetensors, best.safetensors + best.json, last_state.pt (for
``--resume``), log.csv, curves.png, config.yaml.
"""
from __future__ import annotations

import sys

from vision_ssm.tasks.classification import train
from vision_ssm.tasks.classification_config import config_from_args


def main(argv=None) -> int:
    result = train(config_from_args(argv, description=__doc__.splitlines()[0]))
    if result["world_size"] == 1 or _is_rank0():
        print(f"final val top-1 {result['top1']}, best {result['best_top1']} (epoch {result['best_epoch']}), "
              f"{result['train_time_s']:.0f} s")
    return 0


def _is_rank0() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    sys.exit(main())

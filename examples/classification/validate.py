"""Evaluate classifier weights on the validation split of an ImageFolder (top-1 / top-5; works under torchrun).

A thin command line over :func:`vision_ssm.tasks.classification.validate`. Example::

    python examples/classification/validate.py --config examples/classification/configs/digits.yaml \\
        --checkpoint runs/digits/best.safetensors
"""
from __future__ import annotations

import os
import sys

from vision_ssm.tasks.classification import validate
from vision_ssm.tasks.classification_config import build_arg_parser, config_from_mapping


def main(argv=None) -> int:
    p = build_arg_parser(__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="weights: .safetensors (from train.py) or a timm checkpoint")
    args = vars(p.parse_args(argv))
    checkpoint = args.pop("checkpoint")
    m = validate(config_from_mapping(args), checkpoint)
    if os.environ.get("RANK", "0") == "0":
        print(f"top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}  ({m['n']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

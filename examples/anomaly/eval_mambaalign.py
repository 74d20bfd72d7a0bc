"""Evaluate saved MambaAlign weights on the test split of an RGB-X dataset (the seven metrics, heatmaps).

A thin command line over :func:`vision_ssm.tasks.mambaalign.evaluate_align_checkpoint`::

    python examples/anomaly/eval_mambaalign.py --data-root data/MulSen_AD --layout mulsenad --classes capsule \\
        --model mambaalign_wide_resnet50 --image-size 512 --weights runs/align_capsule/last.safetensors \\
        --output runs/align_capsule/eval

The data and model options (``--layout``, ``--aux-kind``, ``--rgb-only``, ``--model``, ``--model-kwargs``) must
match the training run. Writes results.json / .csv, results_by_defect.json and heatmaps/ under --output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mambaalign import add_common, common_config  # noqa: E402

from vision_ssm.tasks.mambaalign import evaluate_align_checkpoint  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--weights", required=True, help="last.safetensors written by train_mambaalign.py")
    p.add_argument("--output", required=True)
    a = p.parse_args(argv)
    evaluate_align_checkpoint(common_config(a), a.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())

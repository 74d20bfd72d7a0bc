"""Evaluate a trained Fusion-Mamba detector: mAP50, mAP75, mAP50:95, per-class AP, pictures on both images.

A thin command line over :func:`vision_ssm.tasks.detection.evaluate_checkpoint`; the model is rebuilt from the
run's config.json. Examples::

    python examples/detection/eval_fusion_mamba.py --run runs/fm_llvip                  # its own test split
    python examples/detection/eval_fusion_mamba.py --run runs/fm_llvip --data-root data/LLVIP --val-split test \\
        --weights last --modality ir                                                     # the IR image only

Writes RUN/eval/results.json and RUN/eval/pictures/*.png.
"""
from __future__ import annotations

import argparse
import sys

from vision_ssm.tasks.detection import MODALITIES, evaluate_checkpoint, format_results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="training output folder (config.json + *.safetensors)")
    p.add_argument("--weights", default="best", choices=["best", "last"])
    p.add_argument("--data-root", default=None, help="default: the run's")
    p.add_argument("--val-split", default=None, help="default: the run's")
    p.add_argument("--modality", default=None, choices=MODALITIES, help="default: the run's")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--num-pictures", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    over = {k: v for k, v in dict(data_root=a.data_root, val_split=a.val_split, modality=a.modality, device=a.device,
                                   eval_batch_size=a.batch_size, num_pictures=a.num_pictures).items() if v is not None}
    res = evaluate_checkpoint(a.run, weights=a.weights, progress=not a.no_progress, **over)
    print(format_results(res, f"{a.run} ({res['weights']}, modality {res['modality']}), AP in %:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export scikit-learn's 1,797 handwritten digits once as an ImageFolder (train/ and val/, upsampled PNGs).

A thin command line over :func:`vision_ssm.data.digits.export_digits`. Example::

    python examples/classification/export_digits.py --root data/digits --size 32
"""
from __future__ import annotations

import argparse
import json
import sys

from vision_ssm.data.digits import export_digits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="data/digits", help="output folder")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (the source is 8x8)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="stratified share held out in val/")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    root = export_digits(a.root, size=a.size, val_fraction=a.val_fraction, seed=a.seed, overwrite=a.overwrite)
    meta = json.loads((root / "digits.json").read_text())
    print(f"{root}: {sum(meta['counts']['train'].values())} train / {sum(meta['counts']['val'].values())} val "
          f"images, {meta['size']}x{meta['size']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

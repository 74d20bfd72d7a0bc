"""Regenerate the pictures of docs/scan_orders.md: ``python docs/scripts/render_scan_orders.py``."""
import pathlib

import torch

from vision_ssm.ops import DirectionSet, get_directions, scan_order
from vision_ssm.viz.scan_orders import render_directions

OUT = pathlib.Path(__file__).resolve().parents[1] / "assets" / "scan_orders"


def families(H: int, W: int, names: list[str], file: str, columns: int = 3) -> None:
    idx = torch.stack([scan_order(f, H, W) for f in names])
    render_directions(DirectionSet.from_index(idx, H, W, "families"), path=OUT / file, cell=18,
                      columns=columns, titles=[f"{f} {H}x{W}" for f in names])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    families(8, 8, ["sweep", "snake", "zigzag", "diagsnake", "zorder", "hilbert"], "families_8x8.png")
    families(11, 14, ["hilbert", "zorder", "zigzag"], "any_size_11x14.png")
    render_directions(get_directions("hilbert", 8, 8, 8), path=OUT / "mambaad_hilbert_k8.png", cell=14)
    render_directions(get_directions("sweep", 5, 7, 4), path=OUT / "vmamba_cross_scan_5x7.png", cell=18)
    render_directions(get_directions("quadsnake", 6, 9, 4), path=OUT / "quadsnake_6x9.png", cell=18)


if __name__ == "__main__":
    main()

"""Label-free geometric augmentation of image batches: random flips and quarter turns.

For anomaly detection on textures (and other orientation-free surfaces), the normal training images seen
flipped or turned are still normal images, so the flips and 90-degree rotations of the dihedral group
multiply the normal data at no cost per step. Objects with a canonical orientation (a screw, a transistor)
must not be augmented this way: the mode ``"none"`` is the recipes' default.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AUGMENT_MODES", "augment_batch"]

#: Accepted augmentation modes: none; horizontal and vertical flips; flips and quarter turns (square inputs).
AUGMENT_MODES = ("none", "flip", "dihedral")


def augment_batch(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply an independent random element of the chosen symmetry group to every image of a batch.

    Args:
        x: Images ``(B, C, H, W)``.
        mode: ``"none"`` (returns ``x``), ``"flip"`` (each image flipped horizontally and/or vertically with
            probability 1/2 each) or ``"dihedral"`` (additionally turned by a random multiple of 90 degrees;
            the 8 elements of the square's symmetry group, equally likely; needs ``H == W``).
        generator: Random generator (CPU) for reproducible draws.

    Returns:
        The augmented batch, same shape as ``x``.

    Raises:
        ValueError: unknown ``mode``, ``x`` not 4-D, or ``"dihedral"`` on non-square images.
    """
    if mode not in AUGMENT_MODES:
        raise ValueError(f"augment must be one of {AUGMENT_MODES}, got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects images (B, C, H, W), got shape {tuple(x.shape)}")
    if mode == "none":
        return x
    if mode == "dihedral" and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"augment='dihedral' needs square images, got H x W = {x.shape[-2]} x {x.shape[-1]}")
    draws = torch.randint(0, 2, (x.shape[0], 3), generator=generator)
    if mode == "flip":
        draws[:, 2] = 0
    out = []
    for img, (fh, fv, turn) in zip(x, draws.tolist()):
        if fh:
            img = img.flip(-1)
        if fv:
            img = img.flip(-2)
        if turn:
            img = img.transpose(-1, -2)  # with the flips above: all 8 dihedral elements
        out.append(img)
    return torch.stack(out)

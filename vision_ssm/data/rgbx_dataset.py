"""Loading, preprocessing and paired augmentation of RGB + auxiliary-modality anomaly samples.

:class:`RGBXDataset` reads the records of :mod:`vision_ssm.data.rgbx_folders` and returns, per sample,
``rgb (3, S, S)`` (normalised with ``mean``/``std``), ``aux (A, S, S)``, ``mask (S, S)`` in {0, 1} and the
labels. Auxiliary kinds (``aux_kind``):

* ``"gray"``: one channel in [0, 1] (infrared; uint16 images divided by 65535), ``A = 1``;
* ``"color"``: three channels in [0, 1], ``A = 3``;
* ``"normals"``: surface normals as unit vectors (``anomaly.md`` §2.8: uint8 ``/255·2−1``, uint16
  ``/65535·2−1``, float within ±1.5 clamped to [−1, 1], float in [0, 1.5] rescaled to [0, 1] then ``·2−1``,
  other floats divided by their largest magnitude; one channel replicated, extra channels dropped;
  every pixel renormalised with eps 1e-6), ``A = 3``; channel order ``(x right, y down, z)``;
* ``"depth"``: one float channel standardised per image (zero mean, unit std), ``A = 1``.

Images are resized bilinearly (normals renormalised after resizing), masks with nearest neighbour, then
``> 0.5``. With ``augment=True`` a random horizontal and vertical flip is applied identically to RGB, aux
and mask; for normals the flipped axis's component changes sign, so the vectors stay consistent with the
flipped surface.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .anomaly_folders import IMAGENET_MEAN, IMAGENET_STD
from .rgbx_folders import RGBX_LAYOUTS, list_rgbx_classes

__all__ = ["AUX_KINDS", "RGBXDataset", "flip_pair", "load_aux", "normals_to_unit"]

#: Auxiliary kind → channels.
AUX_KINDS = {"gray": 1, "color": 3, "normals": 3, "depth": 1}


def normals_to_unit(arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """A normal-map array ``(H, W[, C])`` (uint8, uint16 or float) → unit vectors ``(3, H, W)`` float32."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype == np.uint8:
        v = arr.astype(np.float32) / 255.0 * 2 - 1
    elif arr.dtype == np.uint16:
        v = arr.astype(np.float32) / 65535.0 * 2 - 1
    else:
        v = arr.astype(np.float32)
        lo, hi = float(v.min()), float(v.max())
        if lo >= 0.0 and hi <= 1.5:
            v = v / max(hi, 1e-12) * 2 - 1 if hi > 1.0 else v * 2 - 1
        elif lo >= -1.5 and hi <= 1.5:
            v = np.clip(v, -1, 1)
        else:
            v = np.clip(v / max(abs(lo), abs(hi), 1e-12), -1, 1)
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    v = v[..., :3].transpose(2, 0, 1)
    return (v / np.maximum(np.linalg.norm(v, axis=0, keepdims=True), eps)).astype(np.float32)


def _read(path: str) -> np.ndarray:
    if path.lower().endswith(".npy"):
        return np.load(path, allow_pickle=False)
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im).astype(np.uint16 if im.mode.startswith("I;16") else np.int64)
        if im.mode == "F":
            return np.asarray(im, dtype=np.float32)
        return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else im.mode))


def load_aux(path: str, kind: str) -> Tensor:
    """An auxiliary file → ``(A, H, W)`` float32 tensor of ``kind`` (see the module docstring).

    Raises:
        ValueError: unknown ``kind`` or an array that cannot be that kind.
    """
    if kind not in AUX_KINDS:
        raise ValueError(f"aux_kind must be one of {sorted(AUX_KINDS)}, got {kind!r}")
    arr = _read(path)
    if arr.ndim not in (2, 3):
        raise ValueError(f"auxiliary file {path} holds a {arr.ndim}-D array; expected (H, W) or (H, W, C)")
    if kind == "normals":
        return torch.from_numpy(normals_to_unit(arr))
    if arr.ndim == 3:
        if kind == "color":
            arr = arr[..., :3] if arr.shape[-1] >= 3 else np.repeat(arr[..., :1], 3, axis=-1)
        else:
            arr = arr[..., :3].mean(axis=-1) if arr.dtype == np.uint8 or kind == "depth" else arr[..., 0]
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(arr.dtype), 1.0)
    v = arr.astype(np.float32) / scale
    if kind == "depth":
        v = (v - v.mean()) / (v.std() + 1e-6)
    t = torch.from_numpy(np.ascontiguousarray(v))
    return t.permute(2, 0, 1) if t.dim() == 3 else t[None]


def flip_pair(rgb: Tensor, aux: Tensor | None, mask: Tensor, hflip: bool, vflip: bool,
              aux_is_vector: bool = False) -> tuple[Tensor, Tensor | None, Tensor]:
    """Flip ``rgb (3, H, W)``, ``aux (A, H, W)`` and ``mask (H, W)`` identically.

    With ``aux_is_vector`` (normals ``(x, y, z)``) the x component changes sign under a horizontal flip and
    the y component under a vertical one.
    """
    dims = [d for d, f in ((-1, hflip), (-2, vflip)) if f]
    if not dims:
        return rgb, aux, mask
    rgb, mask = rgb.flip(dims), mask.flip(dims)
    if aux is not None:
        aux = aux.flip(dims)
        if aux_is_vector:
            sign = torch.tensor([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0, 1.0], dtype=aux.dtype)
            aux = aux * sign.view(3, 1, 1)
    return rgb, aux, mask


class RGBXDataset(Dataset):
    """An RGB + auxiliary-modality anomaly dataset (MulSen-AD, Real-IAD D³ or the generic layout).

    Args:
        root: dataset folder.
        layout: ``"mulsenad"``, ``"realiad_d3"`` or ``"rgbx"`` (see :mod:`~vision_ssm.data.rgbx_folders`).
        split: split folder (``"train"``, ``"test"``).
        classes: class names; ``None`` = every class folder.
        image_size: side of the square output.
        aux_kind: ``"gray"``, ``"color"``, ``"normals"`` or ``"depth"``; default per layout: ``"gray"`` for
            MulSen-AD (infrared), ``"normals"`` for Real-IAD D³, ``"depth"`` for ``rgbx``.
        load_aux: ``False`` skips the auxiliary files (items get no ``"aux"``; the RGB-only baseline).
        augment: random horizontal / vertical flips, identical for every modality and the mask.
        mean: RGB normalisation mean (the backbone's).
        std: RGB normalisation std.
        folders: folder-name keyword arguments of the layout's scanner (``rgb_folder``, ``aux_folder``,
            ``gt_folder`` / ``mask_folder``, ``rgb_dirnames``, ``aux_dirnames``).

    Items: ``{"rgb" (3,S,S), "aux" (A,S,S), "mask" (S,S), "label", "cls_name", "specie", "path"}``.

    Raises:
        FileNotFoundError: a folder, an auxiliary image or a mask is missing (the message names it).
        ValueError: unknown layout, split or aux kind.
    """

    def __init__(self, root: str | Path, layout: str, split: str, classes: Sequence[str] | None = None,
                 image_size: int = 256, aux_kind: str | None = None, load_aux: bool = True, augment: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 **folders: str | Sequence[str]) -> None:
        if layout not in RGBX_LAYOUTS:
            raise ValueError(f"unknown RGB-X layout {layout!r}; expected one of {sorted(RGBX_LAYOUTS)}")
        aux_kind = aux_kind or {"mulsenad": "gray", "realiad_d3": "normals", "rgbx": "depth"}[layout]
        if aux_kind not in AUX_KINDS:
            raise ValueError(f"aux_kind must be one of {sorted(AUX_KINDS)}, got {aux_kind!r}")
        self.root, self.layout, self.split = Path(root), layout, split
        self.classes = list(classes) if classes else list_rgbx_classes(root, layout)
        self.records = RGBX_LAYOUTS[layout](self.root, split, self.classes, **folders)
        self.image_size, self.aux_kind, self.load_aux, self.augment = int(image_size), aux_kind, load_aux, augment
        self.aux_chans = AUX_KINDS[aux_kind] if load_aux else 0
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.records)

    def _resize(self, x: Tensor, mode: str) -> Tensor:
        s = self.image_size
        if x.shape[-2:] == (s, s):
            return x
        kw = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
        return F.interpolate(x[None], size=(s, s), mode=mode, **kw)[0]

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        r = self.records[i]
        with Image.open(r["rgb_path"]) as im:
            rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        size = tuple(rgb.shape[-2:])
        rgb = (self._resize(rgb, "bilinear") - self.mean) / self.std
        aux = None
        if self.load_aux:
            aux = load_aux(r["aux_path"], self.aux_kind)
            if tuple(aux.shape[-2:]) != size:
                raise ValueError(f"{r['aux_path']} is {tuple(aux.shape[-2:])} but its RGB image {r['rgb_path']} is "
                                 f"{size}: the modalities must be pixel-aligned")
            aux = self._resize(aux, "bilinear")
            if self.aux_kind == "normals":
                aux = aux / aux.norm(dim=0, keepdim=True).clamp_min(1e-6)
        if r["mask_path"]:
            with Image.open(r["mask_path"]) as m:
                mask = torch.from_numpy((np.asarray(m.convert("L")) > 0).astype(np.float32))
            mask = (self._resize(mask[None], "nearest")[0] > 0.5).float()
        else:
            mask = torch.zeros(self.image_size, self.image_size)
        if self.augment:
            hf, vf = (bool(b) for b in torch.rand(2) < 0.5)
            rgb, aux, mask = flip_pair(rgb, aux, mask, hf, vf, self.aux_kind == "normals")
        item = {"rgb": rgb.contiguous(), "mask": mask.contiguous(), "label": r["label"], "cls_name": r["cls_name"],
                "specie": r["specie"], "path": r["rgb_path"]}
        if aux is not None:
            item["aux"] = aux.contiguous()
        return item

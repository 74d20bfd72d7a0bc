"""Paired RGB–IR detection datasets in the three layouts people have on disk.

* **YOLO txt** (the official Fusion-Mamba code): ``root/visible/<split>/images/*.jpg`` with labels in
  ``root/visible/<split>/labels/<stem>.txt`` (``class cx cy w h`` per line, normalised to [0, 1]), and the IR
  images in ``root/infrared/<split>/images/``. The RGB labels are the targets, as in the official code
  (``detection.md`` §3.2). Folder names are arguments.
* **Pascal VOC XML** (LLVIP as shipped): ``root/visible/<split>/*.jpg``, ``root/infrared/<split>/*.jpg`` and one
  ``root/Annotations/<stem>.xml`` per pair (``object/name`` and ``object/bndbox/{xmin,ymin,xmax,ymax}`` in pixels).
* **COCO json**: ``root/annotations/<split>.json`` (``images``, ``annotations`` with ``bbox = [x, y, w, h]`` in
  pixels, ``categories``); the images it lists are in ``root/visible/<split>/`` and their IR partners, found by
  file stem, in ``root/infrared/<split>/``. Category ids are mapped to ``0 … K−1`` in increasing id order.

RGB and IR images are paired by file stem (``010001.jpg`` ↔ ``010001.jpg`` or ``010001.png``); a stem present in
one folder and not the other, or an image listed by the annotations but missing, raises a ``ValueError`` that
names it. Every sample is kept: an image without objects gives empty targets.

A sample is ``(rgb, ir, target)``: ``rgb`` ``(3, H, W)`` float in [0, 1], ``ir`` ``(ir_channels, H, W)`` float in
[0, 1], ``target`` ``{"boxes": (N, 4) float32 x1, y1, x2, y2 in pixels, "labels": (N,) int64 in 0 … K−1,
"image_id": () int64}``, which is what torchvision's detection models (and
:class:`~vision_ssm.models.fusion_mamba_detector.FusionMambaDetector`, as ``(rgb, ir)`` pairs) take.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .rgbir_transforms import PairSample, check_sample

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "PairRecord",
    "RGBIRDetectionDataset",
    "build_rgbir_dataset",
    "coco_rgbir",
    "collate_pairs",
    "load_image",
    "pair_by_stem",
    "voc_rgbir",
    "yolo_rgbir",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Layouts :func:`build_rgbir_dataset` reads.
FORMATS = ("yolo", "voc", "coco")


@dataclass(frozen=True)
class PairRecord:
    """One annotated pair. ``boxes`` ``(N, 4)`` ``x1, y1, x2, y2``: pixels, or fractions of the image size when
    ``normalized`` (YOLO labels; converted when the image is read). ``labels`` ``(N,)`` int64."""

    stem: str
    rgb: Path
    ir: Path
    boxes: np.ndarray
    labels: np.ndarray
    normalized: bool = False


def _images_by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            if p.stem in out:
                raise ValueError(f"{what} folder {folder} holds two images with the stem {p.stem!r}: "
                                 f"{out[p.stem].name} and {p.name}")
            out[p.stem] = p
    return out


def _few(names: Sequence[str], n: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" … ({len(names)} in all)" if len(names) > n else "")


def pair_by_stem(rgb_dir: str | Path, ir_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """Pair the images of two folders by file stem: ``[(stem, rgb_path, ir_path)]`` sorted by stem.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: a stem has no partner in the other folder (the message names them), a folder holds two
            images with one stem, or there are no images.
    """
    rgb, ir = _images_by_stem(Path(rgb_dir), "RGB"), _images_by_stem(Path(ir_dir), "IR")
    no_ir, no_rgb = set(rgb) - set(ir), set(ir) - set(rgb)
    if no_ir or no_rgb:
        msg = []
        if no_ir:
            msg.append(f"RGB images without an IR partner in {ir_dir}: {_few(no_ir)}")
        if no_rgb:
            msg.append(f"IR images without an RGB partner in {rgb_dir}: {_few(no_rgb)}")
        raise ValueError("unpaired images (pairs are matched by file stem); " + "; ".join(msg))
    if not rgb:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {rgb_dir}")
    return [(s, rgb[s], ir[s]) for s in sorted(rgb)]


def load_image(path: str | Path, channels: int) -> Tensor:
    """Read an image as ``(channels, H, W)`` float in [0, 1] (``channels`` 1: grey, 3: RGB; 16-bit images are
    divided by 65535)."""
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float32) / 65535.0
            t = torch.from_numpy(arr)[None]
            return t if channels == 1 else t.expand(3, -1, -1).clone()
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


class PairDataset(Dataset):
    """What every paired RGB–IR detection dataset shares: ``load(i)`` (subclasses) gives the un-augmented
    sample; ``dataset[i]`` applies ``self.transform`` with a generator seeded by ``(seed, epoch, i)``, so an
    epoch's augmentation is reproducible and :meth:`set_epoch` changes it. Subclasses set
    ``class_names``, ``transform``, ``seed`` and ``epoch``."""

    class_names: list[str]
    transform: Callable[[PairSample, torch.Generator], PairSample] | None
    seed: int
    epoch: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call once per epoch)."""
        self.epoch = int(epoch)

    def load(self, i: int) -> PairSample:
        """Sample ``i`` without augmentation."""
        raise NotImplementedError

    def __getitem__(self, i: int) -> PairSample:
        sample = self.load(i)
        if self.transform is not None:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFF_FFFF_FFFF_FFFF)
            sample = self.transform(sample, g)
            check_sample(sample)
        return sample


class RGBIRDetectionDataset(PairDataset):
    """Annotated RGB–IR pairs read from disk (see the module docstring for the sample layout).

    Args:
        records: The pairs.
        class_names: Name of each label ``0 … K−1``.
        transform: Optional pair transform ``t(sample, generator) -> sample`` (:mod:`.rgbir_transforms`), applied
            with one generator seeded from ``seed``, the epoch (:meth:`set_epoch`) and the index, so the same
            geometry reaches both images and the boxes and a run can be repeated.
        ir_channels: Channels of the IR tensor (1: one thermal band; 3: as the official loader reads it).
        seed: Augmentation seed.
    """

    def __init__(self, records: Sequence[PairRecord], class_names: Sequence[str],
                 transform: Callable[[PairSample, torch.Generator], PairSample] | None = None,
                 ir_channels: int = 3, seed: int = 0):
        if ir_channels not in (1, 3):
            raise ValueError(f"ir_channels must be 1 or 3, got {ir_channels}")
        self.records, self.class_names = list(records), list(class_names)
        self.transform, self.ir_channels, self.seed, self.epoch = transform, ir_channels, seed, 0
        k = len(self.class_names)
        for r in self.records:
            if len(r.labels) and (r.labels.min() < 0 or r.labels.max() >= k):
                raise ValueError(f"{r.stem}: label {int(r.labels.max())} out of range for {k} classes "
                                 f"{self.class_names}")

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int) -> PairSample:
        """Sample ``i`` without augmentation."""
        r = self.records[i]
        rgb, ir = load_image(r.rgb, 3), load_image(r.ir, self.ir_channels)
        if rgb.shape[-2:] != ir.shape[-2:]:
            raise ValueError(f"pair {r.stem!r}: the RGB image {r.rgb} is {tuple(rgb.shape[-2:])} and the IR image "
                             f"{r.ir} is {tuple(ir.shape[-2:])} (H, W); the pair must be aligned and the same size")
        boxes = torch.as_tensor(r.boxes, dtype=torch.float32).reshape(-1, 4)
        if r.normalized:
            h, w = rgb.shape[-2:]
            boxes = boxes * torch.tensor([w, h, w, h], dtype=torch.float32)
        target = {"boxes": boxes, "labels": torch.as_tensor(r.labels, dtype=torch.int64).reshape(-1),
                  "image_id": torch.tensor(i, dtype=torch.int64)}
        return rgb, ir, target


def collate_pairs(batch: Sequence[PairSample]) -> tuple[list[tuple[Tensor, Tensor]], list[dict]]:
    """DataLoader ``collate_fn``: samples → (``[(rgb, ir), ...]``, ``[target, ...]``), the detector's inputs."""
    return [(rgb, ir) for rgb, ir, _ in batch], [t for _, _, t in batch]


def _split_dir(root: Path, modality_dir: str, split: str | None) -> Path:
    return root / modality_dir / split if split else root / modality_dir


def _xyxy_from_cxcywh(a: np.ndarray) -> np.ndarray:
    return np.stack([a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2], 1)


def _read_yolo_labels(path: Path, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 5:
            raise ValueError(f"{path}:{n}: a YOLO label line is 'class cx cy w h' (5 columns), got {line!r}")
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            raise ValueError(f"{path}:{n}: non-numeric value in {line!r}") from None
        c, cx, cy, w, h = vals
        if c != int(c) or c < 0 or (num_classes is not None and c >= num_classes):
            raise ValueError(f"{path}:{n}: class {parts[0]} is not an integer in 0 … "
                             f"{(num_classes or 0) - 1 if num_classes else 'K-1'}")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            raise ValueError(f"{path}:{n}: cx cy w h must be normalised to [0, 1] with w, h > 0, got {line!r}")
        rows.append(vals)
    a = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    return _xyxy_from_cxcywh(a[:, 1:]).clip(0, 1), a[:, 0].astype(np.int64)


def yolo_rgbir(root: str | Path, split: str | None = "train", *, class_names: Sequence[str] | None = None,
               rgb_dir: str = "visible", ir_dir: str = "infrared", images: str = "images", labels: str = "labels",
               missing_labels: str = "empty", **dataset_kwargs: Any) -> RGBIRDetectionDataset:
    """The official code's layout: ``root/<rgb_dir>/<split>/<images>/`` + ``…/<labels>/<stem>.txt`` and
    ``root/<ir_dir>/<split>/<images>/``.

    Args:
        root: Dataset root.
        split: Split folder (``None``: no split level).
        class_names: Names of the label ids (default: ``"0" … "K-1"`` for the largest id found).
        rgb_dir: RGB folder name.
        ir_dir: IR folder name.
        images: Image sub-folder name.
        labels: Label sub-folder name (next to ``images``, as YOLOv5's ``img2label_paths``).
        missing_labels: ``"empty"`` (YOLO's convention: an image without a label file has no objects) or
            ``"error"``.
        **dataset_kwargs: :class:`RGBIRDetectionDataset` arguments (``transform``, ``ir_channels``, ``seed``).

    Raises:
        ValueError: unpaired images, a malformed label line (file and line named), a missing label file with
            ``missing_labels="error"``.
    """
    if missing_labels not in ("empty", "error"):
        raise ValueError(f"missing_labels must be 'empty' or 'error', got {missing_labels!r}")
    root = Path(root)
    rgb_split = _split_dir(root, rgb_dir, split)
    pairs = pair_by_stem(rgb_split / images, _split_dir(root, ir_dir, split) / images)
    nc = len(class_names) if class_names is not None else None
    records = []
    for stem, rgb, ir in pairs:
        lab = rgb_split / labels / f"{stem}.txt"
        if lab.is_file():
            boxes, ids = _read_yolo_labels(lab, nc)
        elif missing_labels == "error":
            raise FileNotFoundError(f"no label file {lab} for the image {rgb}")
        else:
            boxes, ids = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        records.append(PairRecord(stem, rgb, ir, boxes, ids, normalized=True))
    if class_names is None:
        top = max((int(r.labels.max()) for r in records if len(r.labels)), default=0)
        class_names = [str(i) for i in range(top + 1)]
    return RGBIRDetectionDataset(records, class_names, **dataset_kwargs)


def _voc_objects(path: Path) -> list[tuple[str, list[float]]]:
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise ValueError(f"{path}: not a valid XML file ({e})") from None
    out = []
    for obj in tree.getroot().iter("object"):
        name, bb = obj.findtext("name"), obj.find("bndbox")
        if not name or bb is None:
            raise ValueError(f"{path}: an <object> without <name> or <bndbox>")
        try:
            box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: object {name!r} needs numeric xmin, ymin, xmax, ymax") from None
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{path}: object {name!r} has an empty box {box} (xmin, ymin, xmax, ymax)")
        out.append((name.strip(), box))
    return out


def voc_rgbir(root: str | Path, split: str | None = "train", *, class_names: Sequence[str] | None = None,
              rgb_dir: str = "visible", ir_dir: str = "infrared", annotations: str = "Annotations",
              **dataset_kwargs: Any) -> RGBIRDetectionDataset:
    """Pascal VOC XML, LLVIP as shipped: ``root/<rgb_dir>/<split>/``, ``root/<ir_dir>/<split>/`` and
    ``root/<annotations>/<stem>.xml`` (coordinates in pixels, used as given).

    Args:
        root: Dataset root (e.g. ``LLVIP/``).
        split: Split folder (``None``: no split level).
        class_names: Object names in label order (default: the sorted names found; LLVIP: ``["person"]``). An
            object whose name is not in the list is an error.
        rgb_dir: RGB folder name.
        ir_dir: IR folder name.
        annotations: Annotation folder (one XML per pair, named by stem).
        **dataset_kwargs: :class:`RGBIRDetectionDataset` arguments.
    """
    root = Path(root)
    pairs = pair_by_stem(_split_dir(root, rgb_dir, split), _split_dir(root, ir_dir, split))
    objects = {}
    for stem, rgb, _ in pairs:
        xml = root / annotations / f"{stem}.xml"
        if not xml.is_file():
            raise FileNotFoundError(f"no annotation {xml} for the pair {stem!r} ({rgb})")
        objects[stem] = _voc_objects(xml)
    names = list(class_names) if class_names is not None else sorted({n for objs in objects.values()
                                                                      for n, _ in objs})
    index = {n: i for i, n in enumerate(names)}
    records = []
    for stem, rgb, ir in pairs:
        for n, _ in objects[stem]:
            if n not in index:
                raise ValueError(f"{root / annotations / (stem + '.xml')}: object name {n!r} is not one of "
                                 f"class_names {names}")
        boxes = np.asarray([b for _, b in objects[stem]], np.float32).reshape(-1, 4)
        labels = np.asarray([index[n] for n, _ in objects[stem]], np.int64)
        records.append(PairRecord(stem, rgb, ir, boxes, labels))
    return RGBIRDetectionDataset(records, names, **dataset_kwargs)


def coco_rgbir(root: str | Path, split: str | None = "train", *, ann_file: str | Path | None = None,
               rgb_dir: str = "visible", ir_dir: str = "infrared", skip_crowd: bool = True,
               **dataset_kwargs: Any) -> RGBIRDetectionDataset:
    """COCO json: ``ann_file`` (default ``root/annotations/<split>.json``) lists the RGB images (``file_name``
    relative to ``root/<rgb_dir>/<split>/``); each IR partner is the image with the same stem in
    ``root/<ir_dir>/<split>/``.

    Args:
        root: Dataset root.
        split: Split folder (``None``: no split level).
        ann_file: Annotation file.
        rgb_dir: RGB folder name.
        ir_dir: IR folder name.
        skip_crowd: Leave out ``iscrowd = 1`` annotations (crowd regions are not boxes to detect); ``False``
            keeps them as ordinary boxes.
        **dataset_kwargs: :class:`RGBIRDetectionDataset` arguments.
    """
    root = Path(root)
    ann_file = Path(ann_file) if ann_file else root / "annotations" / f"{split or 'all'}.json"
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {ann_file} does not exist")
    coco = json.loads(ann_file.read_text())
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{ann_file}: a COCO file needs '{key}'")
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    rgb_root, ir_root = _split_dir(root, rgb_dir, split), _split_dir(root, ir_dir, split)
    ir_by_stem = _images_by_stem(ir_root, "IR")
    per_image: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        if a["image_id"] not in per_image:
            raise ValueError(f"{ann_file}: annotation {a.get('id')} refers to image_id {a['image_id']}, "
                             "which is not in 'images'")
        if a["category_id"] not in cat_index:
            raise ValueError(f"{ann_file}: annotation {a.get('id')} has category_id {a['category_id']}, "
                             "which is not in 'categories'")
        if not (skip_crowd and a.get("iscrowd", 0)):
            per_image[a["image_id"]].append(a)
    missing_rgb, missing_ir, records = [], [], []
    for im in sorted(coco["images"], key=lambda im: im["file_name"]):
        rgb = rgb_root / im["file_name"]
        stem = Path(im["file_name"]).stem
        if not rgb.is_file():
            missing_rgb.append(im["file_name"])
            continue
        if stem not in ir_by_stem:
            missing_ir.append(stem)
            continue
        boxes = []
        for a in per_image[im["id"]]:
            x, y, w, h = (float(v) for v in a["bbox"])
            if w <= 0 or h <= 0:
                raise ValueError(f"{ann_file}: annotation {a.get('id')} of {im['file_name']} has an empty bbox "
                                 f"{a['bbox']} (x, y, w, h)")
            boxes.append([x, y, x + w, y + h])
        labels = [cat_index[a["category_id"]] for a in per_image[im["id"]]]
        records.append(PairRecord(stem, rgb, ir_by_stem[stem], np.asarray(boxes, np.float32).reshape(-1, 4),
                                  np.asarray(labels, np.int64)))
    if missing_rgb or missing_ir:
        msg = []
        if missing_rgb:
            msg.append(f"images listed in {ann_file.name} but missing in {rgb_root}: {_few(missing_rgb)}")
        if missing_ir:
            msg.append(f"RGB images without an IR partner (same stem) in {ir_root}: {_few(missing_ir)}")
        raise ValueError("; ".join(msg))
    return RGBIRDetectionDataset(records, [c["name"] for c in cats], **dataset_kwargs)


def build_rgbir_dataset(fmt: str, root: str | Path, split: str | None, **kwargs) -> RGBIRDetectionDataset:
    """``yolo_rgbir`` / ``voc_rgbir`` / ``coco_rgbir`` by name (``fmt`` one of :data:`FORMATS`)."""
    builders = {"yolo": yolo_rgbir, "voc": voc_rgbir, "coco": coco_rgbir}
    if fmt not in builders:
        raise ValueError(f"data format must be one of {FORMATS}, got {fmt!r}")
    return builders[fmt](root, split, **kwargs)

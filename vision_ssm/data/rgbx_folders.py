"""RGB + auxiliary-modality (RGB-X) anomaly datasets: MulSen-AD, Real-IAD D³ and a generic folder layout.

Every scanner returns records ``{"rgb_path", "aux_path", "mask_path", "cls_name", "label", "specie"}``
(absolute paths; ``mask_path`` ``""`` for normal images) that :class:`~vision_ssm.data.RGBXDataset` loads.
A sample whose auxiliary image or (for an anomalous test image) mask cannot be found raises a
``FileNotFoundError`` naming the modality and the paths searched: nothing is dropped silently.

Layouts (``root`` is the dataset folder; every folder name is an argument):

* ``mulsenad`` (``anomaly.md`` §2.7): ``<obj>/RGB/{train,test/<type>}/…`` (searched recursively),
  ``<obj>/Infrared/<same relative path>`` (or the unique file of the same stem under that split),
  masks ``<obj>/RGB/GT/<type>/<name or stem.*>``; the type folders ``good``, ``normal``, ``ok`` are normal.
* ``realiad_d3`` (§2.8): ``<cat>/<rgb dir>/<split>/[<type>/]…`` and ``<cat>/<normals dir>/<split>/…`` where
  the folder names are the first of ``rgb_dirnames`` / ``aux_dirnames`` present; masks under
  ``<cat>/<rgb dir>/GT/<type>/`` by name or stem, else anywhere under ``<cat>/GT``.
* ``rgbx`` (generic RGB-D / RGB-X, MVTec 3D-AD style): ``<cls>/<split>/<type>/<rgb_folder>/<name>``,
  ``<cls>/<split>/<type>/<aux_folder>/<stem>.*``, masks ``<cls>/<split>/<type>/<mask_folder>/<stem>.*``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "AUX_EXT",
    "IMG_EXT",
    "NORMAL_TYPES",
    "RGBX_LAYOUTS",
    "list_rgbx_classes",
    "scan_mulsenad",
    "scan_realiad_d3",
    "scan_rgbx",
]

IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Auxiliary files may also be float arrays.
AUX_EXT = (*IMG_EXT, ".npy")
#: Type-folder names of normal images (case-insensitive).
NORMAL_TYPES = ("good", "normal", "ok")
REALIAD_D3_RGB = ("RGB", "rgb", "Image", "image")
REALIAD_D3_AUX = ("Pseudo3D", "pseudo3d", "pseudo_3d", "p3d", "Normals", "normals", "surface_normals")


def _files(folder: Path, exts: Sequence[str] = IMG_EXT, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in exts)


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _is_normal(kind: str) -> bool:
    return kind.lower() in NORMAL_TYPES


def _by_stem(folder: Path, stem: str, exts: Sequence[str], recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in _files(folder, exts, recursive) if p.stem == stem or p.stem == f"{stem}_mask"]


def _find_aux(rgb: Path, rgb_base: Path, aux_base: Path, modality: str) -> str:
    """The auxiliary file of ``rgb``: same relative path, else the same stem in the same relative folder, else
    the unique file of that stem anywhere under ``aux_base``."""
    rel = rgb.relative_to(rgb_base)
    exact = aux_base / rel
    if exact.is_file():
        return str(exact)
    near = _by_stem(aux_base / rel.parent, rgb.stem, AUX_EXT)
    if len(near) == 1:
        return str(near[0])
    found = _by_stem(aux_base, rgb.stem, AUX_EXT, recursive=True) if not near else near
    if len(found) == 1:
        return str(found[0])
    if not found:
        raise FileNotFoundError(f"{modality} image of {rgb} not found: looked for {exact} and any "
                                f"'{rgb.stem}.*' under {aux_base}")
    raise FileNotFoundError(f"{modality} image of {rgb} is ambiguous: {[str(p) for p in found[:4]]}")


def _find_mask(rgb: Path, folders: Sequence[Path], recursive_last: Path | None = None) -> str:
    """The mask of an anomalous ``rgb`` image (same name, else same stem or ``<stem>_mask``)."""
    for folder in folders:
        if (folder / rgb.name).is_file():
            return str(folder / rgb.name)
        hits = _by_stem(folder, rgb.stem, IMG_EXT)
        if hits:
            return str(hits[0])
    if recursive_last is not None:
        hits = _by_stem(recursive_last, rgb.stem, IMG_EXT, recursive=True)
        if len(hits) == 1:
            return str(hits[0])
    searched = [str(f) for f in folders] + ([f"{recursive_last} (recursively)"] if recursive_last else [])
    raise FileNotFoundError(f"mask of anomalous image {rgb} not found (searched {searched}); every anomalous test "
                            "image needs its ground-truth mask")


def _record(rgb: Path, aux: str, mask: str, cls: str, kind: str) -> dict:
    label = int(not _is_normal(kind))
    return dict(rgb_path=str(rgb), aux_path=aux, mask_path=mask if label else "", cls_name=cls, label=label,
                specie=kind)


def scan_mulsenad(root: str | Path, split: str, classes: Sequence[str], rgb_folder: str = "RGB",
                  aux_folder: str = "Infrared", gt_folder: str = "GT") -> list[dict]:
    """Records of MulSen-AD (RGB + infrared), or any dataset in its layout.

    Args:
        root: dataset folder (``<obj>/<rgb_folder>/…``).
        split: ``"train"`` (every image normal) or ``"test"`` (``test/<type>/``).
        classes: object names.
        rgb_folder: the RGB modality folder.
        aux_folder: the auxiliary modality folder (infrared).
        gt_folder: the mask folder inside ``rgb_folder``.
    """
    root, out = Path(root), []
    for cls in classes:
        rgb_base = _need_dir(root / cls / rgb_folder / split, f"MulSen-AD {rgb_folder} {split} folder of {cls!r}")
        aux_base = _need_dir(root / cls / aux_folder / split, f"MulSen-AD {aux_folder} {split} folder of {cls!r}")
        imgs = _files(rgb_base, recursive=True)
        if not imgs:
            raise FileNotFoundError(f"no images under {rgb_base}")
        for rgb in imgs:
            rel = rgb.relative_to(rgb_base)
            kind = "good" if split == "train" or len(rel.parts) == 1 else rel.parts[0]
            aux = _find_aux(rgb, rgb_base, aux_base, aux_folder)
            mask = "" if _is_normal(kind) else _find_mask(rgb, [root / cls / rgb_folder / gt_folder / kind])
            out.append(_record(rgb, aux, mask, cls, kind))
    return out


def _first_dir(base: Path, names: Sequence[str], what: str) -> Path:
    for n in names:
        if (base / n).is_dir():
            return base / n
    raise FileNotFoundError(f"no {what} folder in {base}: expected one of {list(names)}")


def scan_realiad_d3(root: str | Path, split: str, classes: Sequence[str],
                    rgb_dirnames: Sequence[str] = REALIAD_D3_RGB,
                    aux_dirnames: Sequence[str] = REALIAD_D3_AUX, gt_folder: str = "GT") -> list[dict]:
    """Records of Real-IAD D³ (RGB + pseudo-3D surface normals).

    Args:
        root: dataset folder (category folders).
        split: the split folder name under each modality folder (``"train"``, ``"test"``).
        classes: category names.
        rgb_dirnames: candidate names of the RGB folder (the first present is used).
        aux_dirnames: candidate names of the normals folder.
        gt_folder: the mask folder name (inside the RGB folder, or in the category folder).
    """
    root, out = Path(root), []
    for cls in classes:
        cat = _need_dir(root / cls, f"Real-IAD D3 category {cls!r}")
        rgb_dir = _first_dir(cat, rgb_dirnames, "RGB")
        aux_dir = _first_dir(cat, aux_dirnames, "pseudo-3D normals")
        rgb_base = _need_dir(rgb_dir / split, f"Real-IAD D3 RGB {split} folder")
        aux_base = _need_dir(aux_dir / split, f"Real-IAD D3 normals {split} folder")
        imgs = _files(rgb_base, recursive=True)
        if not imgs:
            raise FileNotFoundError(f"no images under {rgb_base}")
        for rgb in imgs:
            rel = rgb.relative_to(rgb_base)
            kind = "good" if len(rel.parts) == 1 else rel.parts[0]
            aux = _find_aux(rgb, rgb_base, aux_base, f"normals ({aux_dir.name})")
            mask = "" if _is_normal(kind) else _find_mask(rgb, [rgb_dir / gt_folder / kind], cat / gt_folder)
            out.append(_record(rgb, aux, mask, cls, kind))
    return out


def scan_rgbx(root: str | Path, split: str, classes: Sequence[str], rgb_folder: str = "rgb",
              aux_folder: str = "depth", mask_folder: str = "gt") -> list[dict]:
    """Records of the generic RGB-X layout ``<cls>/<split>/<type>/{rgb_folder,aux_folder,mask_folder}/``.

    Args:
        root: dataset folder.
        split: split folder name.
        classes: class names.
        rgb_folder: RGB image folder inside each type folder (MVTec 3D-AD: ``rgb``).
        aux_folder: auxiliary folder (``depth``, ``xyz``, ``normals``, ``ir``, ...).
        mask_folder: mask folder (MVTec 3D-AD: ``gt``).
    """
    root, out = Path(root), []
    for cls in classes:
        base = _need_dir(root / cls / split, f"{split} folder of class {cls!r}")
        kinds = sorted(p for p in base.iterdir() if p.is_dir())
        if not kinds:
            raise FileNotFoundError(f"no type folders (good/, <defect>/) under {base}")
        for kdir in kinds:
            rgb_base = _need_dir(kdir / rgb_folder, f"RGB folder {rgb_folder!r} of {cls}/{split}/{kdir.name}")
            aux_base = _need_dir(kdir / aux_folder, f"auxiliary folder {aux_folder!r} of {cls}/{split}/{kdir.name}")
            for rgb in _files(rgb_base):
                aux = _find_aux(rgb, rgb_base, aux_base, aux_folder)
                mask = "" if _is_normal(kdir.name) else _find_mask(rgb, [kdir / mask_folder])
                out.append(_record(rgb, aux, mask, cls, kdir.name))
        if not any(r["cls_name"] == cls for r in out):
            raise FileNotFoundError(f"no images under {base}/*/{rgb_folder}")
    return out


RGBX_LAYOUTS = {"mulsenad": scan_mulsenad, "realiad_d3": scan_realiad_d3, "rgbx": scan_rgbx}


def list_rgbx_classes(root: str | Path, layout: str) -> list[str]:
    """Class (object / category) folders of a dataset: every sub-folder of ``root``, sorted."""
    if layout not in RGBX_LAYOUTS:
        raise ValueError(f"unknown RGB-X layout {layout!r}; expected one of {sorted(RGBX_LAYOUTS)}")
    root = _need_dir(Path(root), f"{layout} data root")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not names:
        raise FileNotFoundError(f"no class folders under {root}")
    return names

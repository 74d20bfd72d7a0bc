"""Paired RGB–IR detection sets: the YOLO, VOC and COCO layouts give the same samples; pairing and label errors
name the file; augmentations move both images and the boxes together."""
from __future__ import annotations

import pytest
import torch
from rgbir_layouts import NAMES, PAIRS, write_coco, write_voc, write_yolo

from vision_ssm.data.rgbir_detection import build_rgbir_dataset, coco_rgbir, collate_pairs, voc_rgbir, yolo_rgbir
from vision_ssm.data.rgbir_transforms import (
    ColorJitterRGB,
    Compose,
    IntensityJitterIR,
    RandomHorizontalFlip,
    RandomResize,
    RandomVerticalFlip,
    RandomZoom,
    Resize,
    default_train_transforms,
)


def _expected(i):
    _, _, _, objs = PAIRS[i]
    return (torch.tensor([o[1:] for o in objs], dtype=torch.float32).reshape(-1, 4),
            torch.tensor([o[0] for o in objs], dtype=torch.int64))


def _check_samples(ds, ir_channels):
    assert len(ds) == len(PAIRS)
    for i, (stem, h, w, _) in enumerate(PAIRS):
        rgb, ir, t = ds[i]
        assert ds.records[i].stem == stem
        assert rgb.shape == (3, h, w) and ir.shape == (ir_channels, h, w)
        assert rgb.dtype == ir.dtype == torch.float32 and 0 <= rgb.min() and rgb.max() <= 1
        boxes, labels = _expected(i)
        assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
        torch.testing.assert_close(t["boxes"], boxes, atol=1e-3, rtol=0)
        assert torch.equal(t["labels"], labels)
        for x1, y1, x2, y2 in boxes.int().tolist():   # the objects really are at the boxes in both images
            assert rgb[0, y1:y2, x1:x2].mean() > 0.6 and ir[:, y1:y2, x1:x2].mean() > 0.6


def test_yolo_layout_with_custom_folder_names(tmp_path):
    write_yolo(tmp_path, "val", rgb_dir="rgb", ir_dir="thermal")
    ds = yolo_rgbir(tmp_path, "val", rgb_dir="rgb", ir_dir="thermal", class_names=NAMES, ir_channels=1)
    _check_samples(ds, 1)
    assert ds.class_names == NAMES
    # the empty label file of the third pair gives an empty (0, 4) target, not a dropped sample
    assert ds[2][2]["boxes"].shape == (0, 4)


def test_voc_layout_as_llvip_ships_it(tmp_path):
    write_voc(tmp_path, "train")
    ds = voc_rgbir(tmp_path, "train", class_names=NAMES, ir_channels=3)
    _check_samples(ds, 3)
    assert sorted(voc_rgbir(tmp_path, "train").class_names) == sorted(NAMES)   # names found in the XMLs


def test_coco_layout_maps_category_ids_in_order(tmp_path):
    write_coco(tmp_path, "test")
    ds = build_rgbir_dataset("coco", tmp_path, "test", ir_channels=1)
    assert ds.class_names == ["person", "car"]   # ids 3, 7 -> labels 0, 1
    _check_samples(ds, 1)


def test_unpaired_images_are_named(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "infrared/train/images/000002.png").unlink()
    with pytest.raises(ValueError, match=r"without an IR partner.*000002"):
        yolo_rgbir(tmp_path, "train")
    write_voc(tmp_path / "voc")
    (tmp_path / "voc/visible/train/000003.jpg").unlink()
    with pytest.raises(ValueError, match=r"IR images without an RGB partner.*000003"):
        voc_rgbir(tmp_path / "voc", "train")


def test_coco_image_missing_on_disk_is_named(tmp_path):
    write_coco(tmp_path)
    (tmp_path / "visible/train/000001.png").unlink()
    with pytest.raises(ValueError, match=r"missing in .*000001\.png"):
        coco_rgbir(tmp_path, "train")
    write_coco(tmp_path / "b")
    (tmp_path / "b/infrared/train/000003.png").unlink()
    with pytest.raises(ValueError, match=r"without an IR partner.*000003"):
        coco_rgbir(tmp_path / "b", "train")


def test_bad_labels_name_file_and_line(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "visible/train/labels/000002.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.5 0.5 1.4 0.2\n")
    with pytest.raises(ValueError, match=r"000002\.txt:2: .*normalised"):
        yolo_rgbir(tmp_path, "train")
    (tmp_path / "visible/train/labels/000002.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"000002\.txt:1: class 5"):
        yolo_rgbir(tmp_path, "train", class_names=NAMES)
    (tmp_path / "visible/train/labels/000002.txt").unlink()
    with pytest.raises(FileNotFoundError, match="000002.txt"):
        yolo_rgbir(tmp_path, "train", missing_labels="error")
    write_voc(tmp_path / "voc")
    with pytest.raises(ValueError, match=r"000001\.xml.*'person' is not one of"):
        voc_rgbir(tmp_path / "voc", "train", class_names=["car"])


def test_pair_of_different_sizes_is_an_error(tmp_path):
    from PIL import Image

    write_yolo(tmp_path)
    Image.new("L", (30, 30)).save(tmp_path / "infrared/train/images/000001.png")
    ds = yolo_rgbir(tmp_path, "train", ir_channels=1)
    with pytest.raises(ValueError, match=r"pair '000001'.*same size"):
        ds[0]


def _bright_box(img: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(img.mean(0) > 0.45, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]


@pytest.mark.parametrize("transform", [RandomHorizontalFlip(1.0), RandomVerticalFlip(1.0), Resize(80),
                                       RandomResize((0.6, 1.6)), RandomZoom((0.6, 0.6)), RandomZoom((1.4, 1.4)),
                                       Compose([RandomHorizontalFlip(1.0), RandomVerticalFlip(1.0),
                                                RandomResize((1.5, 1.5))])])
def test_geometry_moves_both_images_and_the_boxes_together(tmp_path, transform):
    write_yolo(tmp_path)
    ds = yolo_rgbir(tmp_path, "train", ir_channels=1)
    rgb, ir, t = transform(ds.load(1), torch.Generator().manual_seed(3))   # one object per image
    assert rgb.shape[-2:] == ir.shape[-2:] and t["boxes"].shape == (1, 4)
    if isinstance(transform, RandomZoom):
        assert rgb.shape[-2:] == ds.load(1)[0].shape[-2:]
    box = t["boxes"][0].tolist()
    for img in (rgb, ir):
        assert _bright_box(img) == pytest.approx(box, abs=1.5)


def test_color_jitter_touches_only_its_modality_and_augmentation_is_reproducible(tmp_path):
    write_yolo(tmp_path)
    ds = yolo_rgbir(tmp_path, "train", ir_channels=1)
    rgb, ir, t = ds.load(0)
    r2, i2, t2 = ColorJitterRGB(0.5, 0.5, 0.5)((rgb, ir, t), torch.Generator().manual_seed(0))
    assert torch.equal(i2, ir) and not torch.equal(r2, rgb) and torch.equal(t2["boxes"], t["boxes"])
    r3, i3, _ = IntensityJitterIR(0.3, 0.1)((rgb, ir, t), torch.Generator().manual_seed(0))
    assert torch.equal(r3, rgb) and not torch.equal(i3, ir)
    aug = yolo_rgbir(tmp_path, "train", ir_channels=1, transform=default_train_transforms(hflip=0.5), seed=1)
    a, b = aug[0], aug[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[2]["boxes"], b[2]["boxes"])
    draws = set()
    for e in range(6):
        aug.set_epoch(e)
        draws.add(tuple(aug[0][2]["boxes"][0].round().tolist()))
    assert len(draws) > 1   # the epoch changes the draws


def test_collate_gives_the_detector_inputs(tmp_path):
    write_yolo(tmp_path)
    ds = yolo_rgbir(tmp_path, "train", ir_channels=1)
    images, targets = collate_pairs([ds[0], ds[1]])
    assert len(images) == len(targets) == 2 and images[0][0].shape[0] == 3 and images[0][1].shape[0] == 1
    assert int(targets[1]["image_id"]) == 1

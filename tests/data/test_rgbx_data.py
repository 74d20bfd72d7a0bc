"""RGB-X data: MulSen-AD, Real-IAD D3 and the generic layout; paired flips; clear errors for missing files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vision_ssm.data import RGBXDataset, write_tiny_rgbx
from vision_ssm.data.rgbx_dataset import flip_pair, load_aux, normals_to_unit


@pytest.mark.parametrize("layout,aux_chans,kind,chans", [("mulsenad", 1, None, 1), ("realiad_d3", 3, None, 3),
                                                         ("rgbx", 1, None, 1), ("rgbx", 3, "color", 3)])
def test_layouts_load_both_modalities_and_masks(tmp_path, layout, aux_chans, kind, chans):
    root = write_tiny_rgbx(tmp_path, layout, classes=("a", "b"), n_train=3, n_good=2, n_bad=2, aux_chans=aux_chans)
    train = RGBXDataset(root, layout, "train", image_size=24, aux_kind=kind)
    test = RGBXDataset(root, layout, "test", image_size=24, aux_kind=kind)
    assert train.classes == ["a", "b"] and len(train) == 6 and len(test) == 8
    assert all(r["label"] == 0 for r in train.records)
    assert sorted(r["label"] for r in test.records) == [0] * 4 + [1] * 4
    for i in range(len(test)):
        it = test[i]
        assert it["rgb"].shape == (3, 24, 24) and it["aux"].shape == (chans, 24, 24) and it["mask"].shape == (24, 24)
        assert set(it["mask"].unique().tolist()) <= {0.0, 1.0}
        assert (it["mask"].sum() > 0) == bool(it["label"])
        assert test.records[i]["aux_path"] != test.records[i]["rgb_path"]
    if layout == "realiad_d3":  # normals are unit vectors
        assert torch.allclose(test[0]["aux"].norm(dim=0), torch.ones(24, 24), atol=1e-5)
    rgb_only = RGBXDataset(root, layout, "test", image_size=24, load_aux=False)
    assert "aux" not in rgb_only[0] and rgb_only.aux_chans == 0


def test_folder_names_are_configurable(tmp_path):
    root = write_tiny_rgbx(tmp_path, "rgbx", n_train=2, n_good=1, n_bad=1)
    for p in sorted(root.rglob("depth"), reverse=True):
        p.rename(p.parent / "IR")
    with pytest.raises(FileNotFoundError, match="auxiliary folder 'depth'"):
        RGBXDataset(root, "rgbx", "test")
    ds = RGBXDataset(root, "rgbx", "test", aux_kind="gray", aux_folder="IR")
    assert len(ds) == 2 and "/IR/" in ds.records[0]["aux_path"]
    d3 = write_tiny_rgbx(tmp_path / "d3", "realiad_d3", n_train=2, n_good=1, n_bad=1, aux_chans=3)
    (d3 / "alpha" / "Normals").rename(d3 / "alpha" / "P3D")
    with pytest.raises(FileNotFoundError, match="pseudo-3D normals folder"):
        RGBXDataset(d3, "realiad_d3", "test")
    assert len(RGBXDataset(d3, "realiad_d3", "test", aux_dirnames=("P3D",))) == 2


def test_missing_aux_or_mask_is_an_error_naming_it(tmp_path):
    root = write_tiny_rgbx(tmp_path, "mulsenad", n_train=2, n_good=1, n_bad=2)
    victim = sorted((root / "alpha" / "Infrared" / "test" / "defect").iterdir())[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"Infrared image of .*{victim.name}"):
        RGBXDataset(root, "mulsenad", "test")
    root2 = write_tiny_rgbx(tmp_path / "b", "rgbx", n_train=2, n_good=1, n_bad=2)
    mask = sorted((root2 / "alpha" / "test" / "defect" / "gt").iterdir())[1]
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=f"mask of anomalous image .*{mask.stem}"):
        RGBXDataset(root2, "rgbx", "test")
    with pytest.raises(ValueError, match="aux_kind"):
        RGBXDataset(root2, "rgbx", "train", aux_kind="thermal")
    with pytest.raises(ValueError, match="layout"):
        RGBXDataset(root2, "mvtec3d", "train")


def test_misaligned_modalities_are_an_error(tmp_path):
    root = write_tiny_rgbx(tmp_path, "rgbx", n_train=2, n_good=1, n_bad=1, size=32)
    aux = next((root / "alpha" / "train" / "good" / "depth").iterdir())
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(aux)
    ds = RGBXDataset(root, "rgbx", "train")
    with pytest.raises(ValueError, match="pixel-aligned"):
        [ds[i] for i in range(len(ds))]


def test_flips_are_identical_for_every_modality_and_normals_stay_consistent():
    yy, xx = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    rgb = torch.stack([xx, yy, xx * yy])
    aux = torch.nn.functional.normalize(torch.stack([xx - 3, yy - 2, torch.ones_like(xx)]), dim=0)
    mask = (xx > 5).float()
    r, a, m = flip_pair(rgb, aux, mask, hflip=True, vflip=False, aux_is_vector=True)
    assert torch.equal(r, rgb.flip(-1)) and torch.equal(m, mask.flip(-1))
    assert torch.allclose(a[0], -aux[0].flip(-1)) and torch.allclose(a[1:], aux[1:].flip(-1))
    r, a, m = flip_pair(rgb, aux[:1], mask, hflip=False, vflip=True)
    assert torch.equal(a, aux[:1].flip(-2)) and torch.equal(m, mask.flip(-2))


def test_augmented_items_keep_rgb_aux_and_mask_aligned(tmp_path):
    root = write_tiny_rgbx(tmp_path, "rgbx", n_train=1, n_good=0, n_bad=2, size=32)
    plain = RGBXDataset(root, "rgbx", "test", image_size=32)
    aug = RGBXDataset(root, "rgbx", "test", image_size=32, augment=True)
    torch.manual_seed(0)
    flips = set()
    for _ in range(12):
        it, ref = aug[1], plain[1]
        for dims in ([], [-1], [-2], [-1, -2]):
            def f(t, dims=dims):
                return t.flip(dims) if dims else t

            if torch.equal(it["mask"], f(ref["mask"])) and torch.equal(it["rgb"], f(ref["rgb"])):
                assert torch.equal(it["aux"], f(ref["aux"]))
                flips.add(tuple(dims))
                break
        else:
            raise AssertionError("augmented sample is not a common flip of rgb, aux and mask")
    assert len(flips) >= 3


def test_normals_conversion_rules(tmp_path):
    u8 = np.full((2, 2, 3), 255, np.uint8)
    u8[..., :2] = 128
    n = normals_to_unit(u8)
    assert n.shape == (3, 2, 2) and np.allclose(np.linalg.norm(n, axis=0), 1, atol=1e-6) and n[2, 0, 0] > 0.99
    u16 = np.full((2, 2, 4), 65535, np.uint16)  # alpha channel dropped
    assert np.allclose(normals_to_unit(u16), 1 / np.sqrt(3), atol=1e-5)
    f = np.zeros((2, 2), np.float32) - 3.0  # single channel replicated, scaled by the largest magnitude
    assert np.allclose(normals_to_unit(f), -1 / np.sqrt(3), atol=1e-5)
    np.save(tmp_path / "n.npy", np.dstack([np.zeros((3, 3)), np.zeros((3, 3)), 2 * np.ones((3, 3))]).astype(np.float32))
    assert torch.allclose(load_aux(str(tmp_path / "n.npy"), "normals")[2], torch.ones(3, 3))
    Image.fromarray(np.full((3, 3), 40000, np.uint16)).save(tmp_path / "d.png")
    assert torch.allclose(load_aux(str(tmp_path / "d.png"), "gray"), torch.full((1, 3, 3), 40000 / 65535))

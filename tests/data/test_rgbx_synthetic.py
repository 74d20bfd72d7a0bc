"""The two-modality demo generator: each defect kind is visible only in the modality it should be."""
from __future__ import annotations

import numpy as np
import pytest

from vision_ssm.data import RGBXDataset, build_align_demo
from vision_ssm.data.rgbx_synthetic import (
    colorize,
    height_from_texture,
    make_rgbx_defect,
    normals_from_height,
)


def _crop(seed=0, size=48):
    rng = np.random.default_rng(seed)
    from vision_ssm.data.texture_demo import _source

    g = _source("gravel")[100 : 100 + size, 50 : 50 + size]
    return rng, colorize(g, (0.9, 0.85, 0.75)), height_from_texture(g)


@pytest.mark.parametrize("kind,rgb_changes,aux_changes", [("rgb_only", True, False), ("aux_only", False, True),
                                                           ("both", True, True)])
def test_defect_kinds_change_only_their_modality(kind, rgb_changes, aux_changes):
    for seed in range(3):
        rng, rgb, h = _crop(seed)
        rgb2, h2, mask = make_rgbx_defect(rng, rgb, h, kind, radius=8.0)
        assert mask.any() and not mask.all()
        d_rgb = np.abs(rgb2 - rgb).max(axis=-1)
        d_n = np.abs(normals_from_height(h2) - normals_from_height(h)).max(axis=0)
        if rgb_changes:
            assert d_rgb[mask].mean() > 0.05 and d_rgb[mask].mean() > 10 * d_rgb[~mask].mean() + 1e-9
        else:
            assert np.array_equal(rgb2, rgb)
        if aux_changes:
            inside = d_n[mask].mean()
            assert inside > 0.1 and inside > 3 * d_n[~mask].mean()
        else:
            assert np.array_equal(h2, h)


def test_normals_of_a_height_field():
    yy, xx = np.mgrid[:8, :8].astype(np.float32)
    n = normals_from_height(0.5 * xx)  # a ramp rising to the right: the normal leans left
    assert np.allclose(np.linalg.norm(n, axis=0), 1, atol=1e-6)
    assert np.allclose(n[:, 4, 4], np.array([-0.5, 0, 1]) / np.sqrt(1.25), atol=1e-6)


def test_demo_set_layout_and_reuse(tmp_path):
    root = build_align_demo(tmp_path, classes=("brick",), n_train=2, n_test_good=2, n_test_bad=1, size=32)
    ds = RGBXDataset(root, "rgbx", "test", image_size=32, aux_kind="normals", aux_folder="normals")
    assert sorted({r["specie"] for r in ds.records}) == ["aux_only", "both", "good", "rgb_only"]
    it = ds[0]
    assert it["aux"].shape == (3, 32, 32) and it["mask"].sum() > 0
    stamp = (root / "align_demo.json").stat().st_mtime_ns
    build_align_demo(tmp_path, classes=("brick",), n_train=2, n_test_good=2, n_test_bad=1, size=32)
    assert (root / "align_demo.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="unknown defect kind"):
        make_rgbx_defect(np.random.default_rng(0), it["rgb"].numpy(), np.zeros((32, 32)), "scratch", 4.0)

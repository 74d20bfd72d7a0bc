"""The held-out texture generator and the per-defect-type evaluation."""
import numpy as np
import pytest
import torch
from PIL import Image

from vision_ssm.data import AnomalyDataset
from vision_ssm.data.texture_demo import DEFECTS
from vision_ssm.data.texture_shift import (
    HELDOUT_SETTING,
    SHIFT_DEFECTS,
    TUNING_SETTING,
    build_texture_shift,
    shift_defect,
)


def test_settings_are_disjoint_from_each_other_and_from_the_demo():
    assert TUNING_SETTING["seed"] != HELDOUT_SETTING["seed"]
    assert not set(TUNING_SETTING["kinds"]) & set(HELDOUT_SETTING["kinds"])
    assert not set(SHIFT_DEFECTS) & set(DEFECTS)


@pytest.mark.parametrize("kind", SHIFT_DEFECTS)
def test_every_defect_changes_the_image_where_its_mask_is(kind):
    rng = np.random.default_rng(3)
    img = np.random.default_rng(0).uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    out, mask = shift_defect(rng, img, kind)
    assert out.shape == img.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert mask.any() and mask.mean() < 0.25
    assert np.abs(out - img)[mask].mean() > 2 * np.abs(out - img)[~mask].mean()


def test_build_is_deterministic_and_readable(tmp_path):
    kw = dict(seed=5, kinds=("thin_scratch", "warp"), classes=("brick", "grass"), n_train=3, n_test_good=2,
              n_test_bad=4, size=64)
    a = build_texture_shift(tmp_path / "a", **kw)
    b = build_texture_shift(tmp_path / "b", **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png")) and len(files) == 2 * (3 + 2 + 4 + 4)
    for f in files:
        assert np.array_equal(np.asarray(Image.open(a / f)), np.asarray(Image.open(b / f)))
    test = AnomalyDataset(a, "mvtec", "test", image_size=64)
    assert {r["specie"] for r in test.records} == {"good", "thin_scratch", "warp"}
    assert all(test[i]["mask"].sum() > 0 for i, r in enumerate(test.records) if r["label"])
    with pytest.raises(ValueError, match="kinds"):
        build_texture_shift(tmp_path / "c", seed=0, kinds=("patch",))


def test_evaluate_by_defect_scores_each_kind_against_the_normal_images(tmp_path):
    from vision_ssm.tasks.anomaly_report import evaluate_by_defect, markdown_table

    data = build_texture_shift(tmp_path / "d", seed=1, kinds=("cut", "color_spot"), classes=("brick",), n_train=1,
                               n_test_good=3, n_test_bad=4, size=64)
    test = AnomalyDataset(data, "mvtec", "test", image_size=64)

    class Oracle(torch.nn.Module):
        """'Reconstructs' everything but the defect: the anomaly map is the ground-truth mask."""

        def forward(self, x):
            return [x], [x]

        def anomaly_map(self, enc, dec, size):
            return torch.stack([test[int(i)]["mask"] for i in enc[0][:, 0, 0, 0]])

        @staticmethod
        def anomaly_score(amap):
            return amap.flatten(1).amax(1)

    class Indexed(torch.utils.data.Dataset):  # pass each sample's index through the "image"
        image_size, records = test.image_size, test.records

        def __len__(self):
            return len(test)

        def __getitem__(self, i):
            return dict(test[i], img=torch.full((3, 4, 4), float(i)))

    res = evaluate_by_defect(Oracle(), Indexed())
    assert set(res) == {"brick/cut", "brick/color_spot", "cut", "color_spot"}
    for r in res.values():
        assert r["image_auroc"] == pytest.approx(1.0) and r["pixel_auroc"] == pytest.approx(1.0)
    assert "| cut |" in markdown_table(res)

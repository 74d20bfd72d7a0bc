"""The classification recipe on one GPU with bf16 and channels_last (run with ``pytest -m gpu`` on a CUDA machine)."""
from __future__ import annotations

import pytest
import torch
from classification_data import export_small_digits

from vision_ssm.tasks.classification import ClassificationConfig, train

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_small_digits(tmp_path_factory.mktemp("digits") / "d32", size=32)


@pytest.mark.parametrize("model", ["test_vmamba", "test_mambavision"])
def test_recipe_on_gpu_bf16_channels_last(digits, tmp_path, model):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = ClassificationConfig(data_root=str(digits), model=model, img_size=32, crop_pct=1.0, output=str(tmp_path),
                               epochs=3, batch_size=64, lr=2e-3, amp="bf16", channels_last=True, model_ema=True,
                               clip_grad=5.0, hflip=0.0, color_jitter=0.0, scale=[0.7, 1.0], workers=2,
                               progress=False, device="cuda")
    res = train(cfg)
    assert res["top1"] > 60.0, res["history"]
    print(f"{model}: val top-1 {res['top1']:.1f}%, {res['history'][-1]['train_img_per_s']:.0f} img/s")


@pytest.mark.parametrize("model", ["vmamba_tiny_s1l8", "mambavision_tiny"])
def test_recipe_throughput_224(tmp_path, model):
    """Prints the recipe's img/s at 224 px (bf16, channels_last); benchmarks/gpu_classification.py is the full run."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import sys

    from paths import REPO

    sys.path.insert(0, str(REPO))  # benchmarks/ is a package at the repository root, not installed
    from benchmarks.gpu_classification import run, write_random_folder

    data = write_random_folder(tmp_path / "data", images=512)
    r = run(model, data, tmp_path / "out", batch_size=64, epochs=2, workers=4)
    assert r["final_train_loss"] == r["final_train_loss"]  # finite, not NaN
    print(f"{model}: {r['img_per_s_last']:.0f} img/s (bf16, channels_last, batch 64, 512 random images, 2nd epoch)")

"""The MambaAlign recipe end to end on a tiny two-modality set: loss decreases, outputs, resume, eval, RGB only."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys

import numpy as np
import pytest
from paths import REPO
from PIL import Image

from vision_ssm.data import write_tiny_rgbx
from vision_ssm.metrics.anomaly import METRIC_KEYS

SIZE = 32


def _script(name):
    sys.path.insert(0, str(REPO / "examples" / "anomaly"))
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "anomaly" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _common(data, out):
    return ["--data-root", str(data), "--layout", "mulsenad", "--model", "test_mambaalign", "--image-size",
            str(SIZE), "--output", str(out), "--device", "cpu", "--num-heatmaps", "2", "--no-progress",
            "--model-kwargs", json.dumps({"backend": "chunked"})]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """5 epochs of 3 steps on MulSen-AD-layout data (infrared as 1 channel), then a resumed 6th epoch."""
    tmp = tmp_path_factory.mktemp("align")
    data = write_tiny_rgbx(tmp / "data", "mulsenad", n_train=12, n_good=3, n_bad=3, size=SIZE)
    out = tmp / "run"
    train = _script("train_mambaalign")
    extra = ["--batch-size", "4", "--lr", "3e-3", "--synth-prob", "1.0", "--synth-std", "0.5", "--seed", "0"]
    train.main([*_common(data, out), "--epochs", "5", *extra])
    first = json.loads((out / "results.json").read_text())
    with open(out / "history.csv") as f:
        hist5 = [float(r["loss"]) for r in csv.DictReader(f)]
    train.main([*_common(data, out), "--epochs", "6", "--resume", *extra])
    return data, out, first, hist5


def test_loss_decreases(run):
    _, _, _, hist = run
    assert len(hist) == 5 and all(np.isfinite(hist))
    assert np.mean(hist[-2:]) < 0.9 * hist[0], hist


def test_outputs_metrics_and_heatmaps(run):
    _, out, first, _ = run
    for name in ("last.safetensors", "last_state.pt", "config.json", "results.csv", "results_by_defect.json"):
        assert (out / name).exists(), name
    assert set(first) == {"alpha", "mean"} and set(first["mean"]) == set(METRIC_KEYS)
    assert all(0.0 <= first["alpha"][k] <= 1.0 for k in METRIC_KEYS)
    by_defect = json.loads((out / "results_by_defect.json").read_text())
    assert set(by_defect) == {"alpha/defect", "defect"}
    pngs = sorted((out / "heatmaps" / "alpha").glob("*.png"))
    assert len(pngs) == 2
    w = np.asarray(Image.open(pngs[0])).shape[1]
    assert w == 4 * SIZE + 3 * 4  # rgb | aux | ground truth | map


def test_resume_continues_the_run(run):
    _, out, _, _ = run
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_eval_script_reproduces_the_final_metrics(run, tmp_path):
    data, out, _, _ = run
    final = json.loads((out / "results.json").read_text())
    _script("eval_mambaalign").main([*_common(data, tmp_path), "--weights", str(out / "last.safetensors")])
    again = json.loads((tmp_path / "results.json").read_text())
    for k in METRIC_KEYS:
        assert again["mean"][k] == pytest.approx(final["mean"][k], abs=1e-6)


def test_rgb_only_baseline_runs_with_amp(run, tmp_path):
    data, _, _, _ = run
    from vision_ssm.tasks.mambaalign import AlignConfig, train_align

    cfg = AlignConfig(data_root=str(data), layout="mulsenad", rgb_only=True, model="test_mambaalign",
                      model_kwargs={"backend": "chunked"}, image_size=SIZE, epochs=1, batch_size=4, lr=1e-3,
                      output=str(tmp_path), num_heatmaps=1, progress=False, amp=True)  # bf16 autocast on CPU
    res = train_align(cfg)
    assert set(res["results"]["mean"]) == set(METRIC_KEYS)
    png = next((tmp_path / "heatmaps" / "alpha").glob("*.png"))
    assert np.asarray(Image.open(png)).shape[1] == 3 * SIZE + 2 * 4  # no aux panel
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train_align(AlignConfig(**{**cfg.__dict__, "batch_size": 64, "output": str(tmp_path / "x")}))

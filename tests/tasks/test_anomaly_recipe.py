"""The MambaAD recipe end to end on a tiny synthetic dataset: metrics, checkpoints, heatmaps, resume, eval CLI."""
import csv
import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from paths import REPO
from PIL import Image

from vision_ssm.data.anomaly_synthetic import write_tiny_dataset
from vision_ssm.metrics.anomaly import METRIC_KEYS

ROOT = REPO
SIZE = 64  # test_mambaad's smallest input


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "anomaly" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(data, out, epochs, *extra):
    return ["--data-root", str(data), "--dataset", "mvtec", "--epochs", str(epochs), "--batch-size", "4",
            "--image-size", str(SIZE), "--output", str(out), "--device", "cpu", "--model", "test_mambaad",
            "--eval-every", "1", "--num-heatmaps", "2", "--no-progress", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 2-epoch run (shared by the checks below), then a resumed third epoch."""
    try:  # numba's parallel scan next to torch's threads oversubscribes 2-core CI machines
        import numba

        numba_threads = numba.get_num_threads()
        numba.set_num_threads(1)
    except ImportError:
        numba = None
    base = tmp_path_factory.mktemp("recipe")
    data = write_tiny_dataset(base / "data", "mvtec", classes=("alpha", "beta"), n_train=8, n_good=2, n_bad=3,
                              size=48)
    out = base / "out"
    train = _script("train_mambaad")
    assert train.main(_args(data, out, 2)) == 0
    first = json.loads((out / "results.json").read_text())
    state = torch.load(out / "last_state.pt", weights_only=True)
    assert train.main(_args(data, out, 3, "--resume")) == 0
    yield dict(data=data, out=out, first=first, state2=state)
    if numba is not None:
        numba.set_num_threads(numba_threads)


def test_results_json_has_all_metrics_per_class_and_mean(run):
    res = json.loads((run["out"] / "results.json").read_text())
    assert set(res) == {"alpha", "beta", "mean"}
    for cls, r in res.items():
        assert list(r) == list(METRIC_KEYS), cls
        for k, v in r.items():
            assert math.isfinite(v) and 0.0 <= v <= 1.0, (cls, k, v)
    for k in METRIC_KEYS[:-1]:
        assert res["mean"][k] == pytest.approx((res["alpha"][k] + res["beta"][k]) / 2)
    rows = list(csv.DictReader(open(run["out"] / "results.csv")))
    assert [r["class"] for r in rows] == ["alpha", "beta", "mean"]


def test_checkpoints_load_into_the_model(run):
    import timm
    from safetensors.torch import load_file, load_model

    import vision_ssm.models  # noqa: F401

    for name in ("last.safetensors", "best.safetensors"):
        sd = load_file(run["out"] / name)
        assert any(k.startswith("net_t.") for k in sd) and any(k.startswith("net_s.") for k in sd)
        model = timm.create_model("test_mambaad", pretrained=False)
        load_model(model, str(run["out"] / name))
        enc, dec = model.eval()(torch.zeros(1, 3, SIZE, SIZE))
        assert all(torch.isfinite(d).all() for d in dec)


def test_heatmaps_written(run):
    pngs = sorted((run["out"] / "heatmaps").rglob("*.png"))
    assert {p.parent.name for p in pngs} == {"alpha", "beta"} and len(pngs) == 4
    arr = np.asarray(Image.open(pngs[0]))
    assert arr.shape == (SIZE, 3 * SIZE + 8, 3) and arr.std() > 0


def test_resume_continues_the_run(run):
    state = torch.load(run["out"] / "last_state.pt", weights_only=True)
    assert run["state2"]["epoch"] == 1 and state["epoch"] == 2
    assert [e["epoch"] for e in state["history"]] == [1, 2, 3]
    assert state["history"][:2] == run["state2"]["history"]  # the first two epochs are kept, not redone
    # the scheduler kept counting iterations across the restart (4 per epoch here: 16 images / batch 4)
    assert state["scheduler"]["last_epoch"] == 12
    hist = list(csv.DictReader(open(run["out"] / "history.csv")))
    assert {r["epoch"] for r in hist} == {"1", "2", "3"}
    cfg = json.loads((run["out"] / "config.json").read_text())
    assert cfg["resume"] and cfg["epochs"] == 3 and cfg["classes"] == ["alpha", "beta"]


def test_resume_without_state_is_a_clear_error(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        _script("train_mambaad").main(_args(run["data"], tmp_path / "fresh", 1, "--resume"))


def test_eval_cli_reproduces_best_metrics(run, tmp_path):
    best = json.loads((run["out"] / "best.json").read_text())
    ev = _script("eval_mambaad")
    assert ev.main(["--data-root", str(run["data"]), "--dataset", "mvtec", "--image-size", str(SIZE),
                    "--weights", str(run["out"] / "best.safetensors"), "--output", str(tmp_path / "ev"),
                    "--model", "test_mambaad", "--no-progress"]) == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    for cls in best:
        for k in METRIC_KEYS:
            assert res[cls][k] == pytest.approx(best[cls][k], abs=1e-6), (cls, k)
    assert list((tmp_path / "ev" / "heatmaps").rglob("*.png"))

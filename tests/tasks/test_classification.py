"""The classification recipe on real digits: learning, resume, fine-tuning, weight decay, files, validate."""
from __future__ import annotations

import csv
import dataclasses
import fnmatch
import shutil

import pytest
import torch
from classification_data import digits_subset, export_small_digits
from safetensors.torch import load_file

from vision_ssm.tasks import classification as cls_task
from vision_ssm.tasks.classification import ClassificationConfig, build_model, build_optimizer, train, validate

FAST = dict(model="test_mambavision", img_size=16, crop_pct=1.0, hflip=0.0, color_jitter=0.0, workers=0,
            progress=False, scale=[0.7, 1.0], ratio=[0.9, 1.1])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_small_digits(tmp_path_factory.mktemp("digits") / "d16", size=16)


@pytest.fixture(scope="module")
def tiny(digits, tmp_path_factory):
    """10 classes x 4 train / 1 val images."""
    return digits_subset(digits, tmp_path_factory.mktemp("tiny") / "d", 4, 1)


@pytest.fixture(scope="module")
def short(digits, tmp_path_factory):
    """500 training images (50 per class) and the full held-out split (359)."""
    src = digits_subset(digits, tmp_path_factory.mktemp("short") / "d", 50, 0)
    shutil.rmtree(src / "val")
    shutil.copytree(digits / "val", src / "val")
    return src


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_digits_short_schedule_learns(short, tmp_path):
    """A shortened digits schedule (500 images, 2 epochs at 16x16) ends far above chance (10 %) on the held-out
    split (the full schedule, 1,438 images x 10 epochs at 32x32, is measured in docs/tasks/classification.md)."""
    cfg = ClassificationConfig(data_root=str(short), output=str(tmp_path), epochs=2, batch_size=32, lr=3e-3,
                               warmup_epochs=0, eval_every=0, **FAST)
    res = train(cfg)
    assert res["num_classes"] == 10 and res["world_size"] == 1
    assert res["top1"] > 50.0, res["history"]
    assert res["top5"] >= res["top1"]
    for name in ("last.safetensors", "best.safetensors", "best.json", "last_state.pt", "log.csv", "curves.png",
                 "config.yaml"):
        assert (tmp_path / name).is_file(), name
    rows = _rows(tmp_path / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[0]["top1"] == "" and rows[1]["top1"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    # validate.py's function reproduces the last evaluation from the saved weights
    m = validate(dataclasses.replace(cfg, val_batch_size=64), tmp_path / "last.safetensors")
    assert m["n"] == 359
    assert m["top1"] == pytest.approx(res["top1"], abs=1e-6)


def _resume_cfg(tiny, out):
    # every source of randomness on: augmentation, mixup/cutmix (numpy), drop path (torch), EMA, shuffle
    return ClassificationConfig(data_root=str(tiny), output=str(out), epochs=2, batch_size=8, lr=2e-3,
                                mixup=0.8, cutmix=1.0, model_ema=True, model_ema_decay=0.9,
                                model_kwargs={"drop_path_rate": 0.1}, clip_grad=5.0, **FAST)


@pytest.fixture(scope="module")
def full_run(tiny, tmp_path_factory):
    """A 2-epoch run with every source of randomness on (also the fine-tuning source)."""
    out = tmp_path_factory.mktemp("full")
    return out, train(_resume_cfg(tiny, out))


def test_resume_continues_identically(tiny, full_run, tmp_path, monkeypatch):
    full_dir, full = full_run

    real = cls_task.write_log_csv

    def interrupt(history, path):  # called right after epoch 1's checkpoint: stop there like a killed job
        real(history, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(cls_task, "write_log_csv", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(_resume_cfg(tiny, tmp_path / "part"))
    monkeypatch.setattr(cls_task, "write_log_csv", real)
    assert len(_rows(tmp_path / "part" / "log.csv")) == 1
    resumed = train(dataclasses.replace(_resume_cfg(tiny, tmp_path / "part"), resume=True))

    for name in ("last.safetensors", "last_ema.safetensors"):
        a, b = load_file(full_dir / name), load_file(tmp_path / "part" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in full["history"]]
    assert resumed["top1"] == full["top1"] and resumed["ema_top1"] == full["ema_top1"]


def test_resume_without_state_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="last_state.pt"):
        train(dataclasses.replace(_resume_cfg(tiny, tmp_path), resume=True))


def test_finetune_loads_backbone_and_puts_a_new_head(tiny, full_run, tmp_path):
    src = full_run[0] / "last.safetensors"  # 10 classes
    ckpt = load_file(src)
    three = digits_subset(tiny, tmp_path / "three", 4, 1, classes=(0, 1, 2))
    ft = ClassificationConfig(data_root=str(three), output=str(tmp_path / "ft"), epochs=1, batch_size=8,
                              finetune=str(src), **FAST)
    model = build_model(ft, num_classes=3)
    assert model.num_classes == 3 and model.get_classifier().out_features == 3
    state = model.state_dict()
    head = model.pretrained_cfg["classifier"]
    for k, v in ckpt.items():
        if not k.startswith(head + "."):
            assert torch.equal(state[k], v), k
    assert ckpt[head + ".weight"].shape[0] == 10
    res = train(ft)  # and the recipe trains it
    assert res["num_classes"] == 3
    assert load_file(tmp_path / "ft" / "last.safetensors")[head + ".weight"].shape[0] == 3


def test_finetune_checkpoint_errors(tiny, tmp_path):
    cfg = ClassificationConfig(data_root=str(tiny), finetune=str(tmp_path / "missing.safetensors"), **FAST)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        build_model(cfg, 10)


@pytest.mark.parametrize("name, patterns", [("test_vmamba", ("*A_logs", "*Ds", "*dt_projs_bias")),
                                            ("test_mambavision", ("*.A_log", "*.D"))])
def test_no_weight_decay_is_honoured(name, patterns):
    """SSM parameters named by the model's no_weight_decay() (2-D A_log(s) included) get no weight decay."""
    cfg = ClassificationConfig(model=name, weight_decay=0.05)
    model = build_model(cfg, 10)
    opt = build_optimizer(cfg, model, global_batch=64)
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(decay_of) == len(names)
    nwd = model.no_weight_decay()
    two_d_ssm = 0
    for n, p in names.items():
        excluded = p.ndim <= 1 or n.endswith(".bias") or any(fnmatch.fnmatch(n, pat) for pat in nwd)
        assert decay_of[id(p)] == (0.0 if excluded else 0.05), n
        if any(fnmatch.fnmatch(n, pat) for pat in patterns) and p.ndim >= 2:
            two_d_ssm += 1
            assert decay_of[id(p)] == 0.0, n
    assert two_d_ssm > 0  # the case timm would otherwise decay: 2-D A_log(s)


def test_lr_scales_with_global_batch():
    cfg = ClassificationConfig(lr=1e-3, lr_base_size=256)
    opt = build_optimizer(cfg, build_model(cfg, 10), global_batch=512)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3)


def test_bad_inputs_are_named(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="data_root"):
        train(ClassificationConfig(data_root=str(tmp_path / "nope"), output=str(tmp_path / "o"), **FAST))
    with pytest.raises(FileNotFoundError, match="split folder"):
        train(ClassificationConfig(data_root=str(tiny / "train"), output=str(tmp_path / "o"), **FAST))
    with pytest.raises(ValueError, match="amp"):
        ClassificationConfig(amp="fp8")
    with pytest.raises(ValueError, match="batch_size must be even"):
        train(ClassificationConfig(data_root=str(tiny), output=str(tmp_path / "o"), batch_size=7, mixup=0.8,
                                   **FAST))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        train(ClassificationConfig(data_root=str(tiny), output=str(tmp_path / "o"), batch_size=64, **FAST))


def test_grad_accumulation_matches_a_larger_batch(tiny, tmp_path):
    """2 micro-batches of 4 + accumulation give the same update as one batch of 8 (LayerNorm model, no aug)."""
    base = dict(model="test_vmamba", model_kwargs={"drop_path_rate": 0.0}, no_aug=True, smoothing=0.0,
                img_size=16, crop_pct=1.0, workers=0, progress=False, epochs=1, val_split="", lr=1e-3,
                sched="cosine", warmup_epochs=0, data_root=str(tiny))
    train(ClassificationConfig(output=str(tmp_path / "a"), batch_size=8, **base))
    # the sampler's order is the same; micro-batches 2k, 2k+1 of size 4 cover global batch k of size 8
    train(ClassificationConfig(output=str(tmp_path / "b"), batch_size=4, accum_steps=2, **base))
    a, b = load_file(tmp_path / "a" / "last.safetensors"), load_file(tmp_path / "b" / "last.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize("bad_call", [1, 4])  # a middle batch; the epoch's last batch (40 images / 8)
def test_non_finite_loss_stops_training_before_the_checkpoint(tiny, tmp_path, monkeypatch, bad_call):
    """A NaN loss raises FloatingPointError naming its batch, and the epoch writes no checkpoint."""
    real = cls_task.build_criterion

    def nan_at(cfg, mixup):
        crit, calls = real(cfg, mixup), [0]

        class Crit(torch.nn.Module):
            def forward(self, out, y):
                calls[0] += 1
                loss = crit(out, y)
                return loss * float("nan") if calls[0] == bad_call + 1 else loss

        return Crit()

    monkeypatch.setattr(cls_task, "build_criterion", nan_at)
    cfg = ClassificationConfig(data_root=str(tiny), output=str(tmp_path / "o"), batch_size=8, epochs=1, **FAST)
    with pytest.raises(FloatingPointError, match=f"non-finite loss nan at epoch 1, batch {bad_call}"):
        train(cfg)
    assert not (tmp_path / "o" / "last.safetensors").exists()


def test_command_line_over_yaml(tmp_path):
    from vision_ssm.tasks.classification_config import config_from_args, load_config_file

    y = tmp_path / "p.yaml"
    y.write_text("model: test_vmamba\nepochs: 7\nlr: 0.004\nmodel_ema: true\nscale: [0.5, 1.0]\n")
    cfg = config_from_args(["--config", str(y), "--epochs", "3", "--no-aug", "--no-model-ema", "--amp", "none",
                            "--model-kwargs", '{"dims": 32}'])
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.model_ema, cfg.no_aug, cfg.amp) == ("test_vmamba", 3, 0.004, False,
                                                                                     True, None)
    assert cfg.scale == [0.5, 1.0] and cfg.model_kwargs == {"dims": 32}
    assert config_from_args([]).no_aug is False
    y.write_text("modle: x\n")
    with pytest.raises(ValueError, match="unknown keys \\['modle'\\]"):
        load_config_file(y)


def test_presets_load_and_name_registered_models():
    import timm
    from paths import REPO

    from vision_ssm.tasks.classification_config import load_config_file

    presets = sorted((REPO / "examples" / "classification" / "configs").glob("*.yaml"))
    assert len(presets) >= 10
    for path in presets:
        cfg = ClassificationConfig(**load_config_file(path))
        assert timm.is_model(cfg.model), (path.name, cfg.model)
        if path.stem != "digits":
            assert path.stem == cfg.model and 80.0 < cfg.published_top1 < 90.0, path.name

"""The recipe under ``torchrun --nproc_per_node=2`` on CPU (Gloo) equals one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from classification_data import digits_subset, export_small_digits
from paths import REPO, TESTS
from safetensors.torch import load_file

from vision_ssm.tasks.classification import ClassificationConfig, train

# deterministic apart from the shuffle: no augmentation, mixup, smoothing, dropout or drop path; LayerNorm model
FLAGS = dict(model="test_vmamba", model_kwargs={"drop_path_rate": 0.0}, drop_rate=0.0, img_size=16, crop_pct=1.0,
             no_aug=True, smoothing=0.0, epochs=1, lr=1e-3, warmup_epochs=0, workers=0, val_split="")


def _argv(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        else:
            out += [flag, json.dumps(v) if isinstance(v, (dict, list)) else str(v)]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    digits = export_small_digits(tmp_path_factory.mktemp("digits") / "d16", size=16)
    return digits_subset(digits, tmp_path_factory.mktemp("ddp") / "d", 4, 1)  # 40 train images


def test_torchrun_two_processes_match_one(data, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    # 40 images, 4 per process x 2 processes = global batch 8 -> 5 optimizer updates
    ddp_cfg = dict(FLAGS, data_root=str(data), output=str(tmp_path / "ddp"), batch_size=4, no_progress=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS / "helpers")]), OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(TESTS / "helpers" / "ddp_train_probe.py"), str(probe), *_argv(ddp_cfg), "--device", "cpu"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    ranks = [json.loads((probe / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [x["world_size"] for x in ranks] == [2, 2]  # both ranks ran, in one process group
    # the checkpoint is written once, by rank 0 (last + no best without val: one save_weights, one save_state)
    assert ranks[0]["calls"] == {"save_weights": 1, "save_state": 1}
    assert ranks[1]["calls"] == {"save_weights": 0, "save_state": 0}
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "config.yaml", "curves.png", "last.safetensors", "last_state.pt", "log.csv"]

    p0, p1 = load_file(probe / "rank0.safetensors"), load_file(probe / "rank1.safetensors")
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k  # DDP keeps the replicas identical
    saved = load_file(tmp_path / "ddp" / "last.safetensors")
    for k in p0:
        assert torch.equal(saved[k], p0[k]), k

    # one process, batch 8 = the same global batches (DistributedSampler(num_replicas=1), same seed)
    torch.set_num_threads(1)
    single = train(ClassificationConfig(**dict(FLAGS, data_root=str(data), output=str(tmp_path / "one"),
                                               batch_size=8, progress=False, device="cpu")))
    assert single["history"][-1]["train_loss"] == pytest.approx(ranks[0]["train_loss"], rel=1e-4)
    one = load_file(tmp_path / "one" / "last.safetensors")
    for k in one:
        torch.testing.assert_close(p0[k], one[k], rtol=1e-3, atol=1e-5, msg=k)

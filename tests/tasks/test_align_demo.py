"""``python -m vision_ssm demo-align`` wiring: both models, the per-kind table, reuse of finished runs."""
from __future__ import annotations

import json

from vision_ssm.__main__ import main


def test_demo_align_cli_tiny(tmp_path, capsys):
    args = ["demo-align", "--output", str(tmp_path), "--epochs", "1", "--batch-size", "8", "--image-size", "32",
            "--n-train", "8", "--n-test-good", "2", "--n-test-bad", "1", "--no-progress"]
    assert main(args) == 0
    report = json.loads((tmp_path / "demo_align_seed0.json").read_text())
    assert list(report["rows"]) == [f"{k} / {m}" for k in ("rgb_only", "aux_only", "both")
                                    for m in ("RGB + normals", "RGB only")]
    assert (tmp_path / "rgb" / "config.json").exists() and (tmp_path / "rgbx" / "last.safetensors").exists()
    assert "| aux_only / RGB only |" in capsys.readouterr().out
    assert main([*args, "--reuse"]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2

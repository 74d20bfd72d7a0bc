"""The loader of the official code for side-by-side benchmarks, on a stand-in checkout (no upstream code here)."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from benchmarks import official


def _fake_vmamba(root, width: int):
    models = root / "classification" / "models"
    models.mkdir(parents=True)
    (models / "__init__.py").write_text("raise ImportError('the package __init__ must not run')\n")
    (models / "csms6s.py").write_text("WITH_SELECTIVESCAN_OFLEX = False\nWITH_SELECTIVESCAN_MAMBA = True\n")
    (models / "csm_triton.py").write_text("def cross_scan_fn(x):\n    return x\n\ndef cross_merge_fn(y):\n"
                                         "    return y\n")
    (models / "vmamba.py").write_text(textwrap.dedent(f"""
        import torch
        from fvcore.nn import FlopCountAnalysis  # only for FLOP counting upstream
        from .csms6s import WITH_SELECTIVESCAN_MAMBA

        def vmamba_tiny_s1l8():
            return torch.nn.Linear(3, {width})
        """))
    return root


def test_builds_the_official_counterpart_from_a_checkout(tmp_path):
    build, label = official.official_builder("vmamba_tiny_s1l8", {"vmamba": str(_fake_vmamba(tmp_path / "a", 5))})
    assert isinstance(build(), torch.nn.Linear) and build().out_features == 5
    assert label == "official vmamba_tiny_s1l8 [mamba-ssm]"
    cross_scan, cross_merge = official.official_route(tmp_path / "a")
    assert cross_scan(1) == 1 and cross_merge(2) == 2


def test_a_second_checkout_replaces_the_first(tmp_path):
    official.official_builder("vmamba_tiny_s1l8", {"vmamba": str(_fake_vmamba(tmp_path / "a", 5))})
    build, _ = official.official_builder("vmamba_tiny_s1l8", {"vmamba": str(_fake_vmamba(tmp_path / "b", 7))})
    assert build().out_features == 7
    assert sys.modules["_official_vmamba"].__path__ == [str(tmp_path / "b" / "classification" / "models")]


def test_no_counterpart_or_no_checkout_gives_none():
    assert official.official_builder("convnext_tiny", {"vmamba": "/x"}) is None
    assert official.official_builder("mambavision_tiny", {"vmamba": "/x", "mambavision": None}) is None


def test_a_wrong_path_names_the_repository(tmp_path):
    with pytest.raises(FileNotFoundError, match="NVlabs/MambaVision"):
        official.official_builder("mambavision_tiny", {"mambavision": str(tmp_path)})

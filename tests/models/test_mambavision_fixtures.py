"""MambaVision against the golden outputs of the official code (tests/fixtures/mambavision_small*).

Every CPU selective-scan backend must reproduce the logits of both cases (64x64 and the 72x88 input
that needs window zero-padding) and the four stage outputs, within 1e-5 x max|output| in fp32.
"""
from __future__ import annotations

import pytest
import torch
from _mv_fixture import NAMES, assert_close_rel, build, load_fixture

from vision_ssm.models.mambavision import checkpoint_filter_fn
from vision_ssm.ops import available_backends, use_backend

BACKENDS = available_backends("cpu")


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    meta, tensors, sd = load_fixture(request.param)
    model = build(meta).eval()
    result = model.load_state_dict(checkpoint_filter_fn(sd, model), strict=False)
    return request.param, meta, tensors, model, result


def test_official_keys_load_exactly(loaded):
    name, meta, _, model, result = loaded
    assert not result.missing_keys and not result.unexpected_keys, (result.missing_keys, result.unexpected_keys)
    assert len(model.state_dict()) == meta["keys"]
    assert sum(p.numel() for p in model.parameters()) == meta["num_parameters"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_logits_and_stage_outputs_match_upstream(loaded, backend):
    name, meta, tensors, model, _ = loaded
    n_stages = len(model.stages)
    for case in meta["cases"]:
        x = tensors[case["inputs"][0]]
        feats = [f for f in meta["features"] if f["case"] == case["case"]]
        assert len(feats) == n_stages
        with use_backend(backend), torch.no_grad():
            logits = model(x)
            final, inter = model.forward_intermediates(x)
        assert_close_rel(logits, tensors[case["outputs"][0]], f"{name}/{backend} case {case['case']} logits")
        for f, t in zip(feats, inter):
            assert_close_rel(t, tensors[f["name"]], f"{name}/{backend} {f['name']} ({f['module']})")


def test_single_dt_bias_flag_changes_output_as_the_fixture_says(loaded):
    """``double_dt_bias=False`` is the textbook mixer; the fixture's sensitivity note gives the expected shift."""
    name, meta, tensors, model, _ = loaded
    single = build(meta, double_dt_bias=False).eval()
    single.load_state_dict(model.state_dict())
    with torch.no_grad():
        shift = (single(tensors["input.0"]) - model(tensors["input.0"])).abs().max().item()
    key = next(k for k in meta["sensitivity"] if "applied once" in k)
    assert shift == pytest.approx(meta["sensitivity"][key], rel=1e-3)

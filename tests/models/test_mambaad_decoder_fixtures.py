"""MambaUPNet against the upstream decoder fixtures, in both key namings (MambaAD repo and ADer).

Both fixtures hold the same weights under the two namings and the same input, and record identical
outputs; the test loads each through ``checkpoint_filter_fn`` with zero missing/unexpected keys, checks
that the two loaded state dicts are equal, and reproduces every output (and layer 0's output) once.
"""
from __future__ import annotations

import json

import pytest
import torch
from paths import FIXTURES as FIXTURES_DIR
from safetensors.torch import load_file

from vision_ssm.models.mambaad import MambaUPNet, checkpoint_filter_fn

FIXTURES = FIXTURES_DIR
NAMES = ("mambaad_decoder_mambaad", "mambaad_decoder_ader")


def _build(meta: dict) -> MambaUPNet:
    kw = meta["builder_kwargs"]
    L0 = meta["inputs"][0]["shape"][-1]
    return MambaUPNet(
        kw["dims_decoder"], kw["depths_decoder"], d_state=kw["d_state"], drop_path_rate=kw["drop_path_rate"],
        scan=kw["scan_type"], directions=kw["num_direction"],
        scan_index_sizes=[L0 * 2**i for i in range(len(kw["dims_decoder"]))],
    ).eval()


def _load(name: str):
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    t = load_file(FIXTURES / f"{name}.safetensors")
    sd = {k[len("state_dict."):]: v for k, v in t.items() if k.startswith("state_dict.")}
    assert len(sd) == meta["keys"]
    model = _build(meta)
    filtered = checkpoint_filter_fn(sd, model)
    missing, unexpected = model.load_state_dict(filtered, strict=False)
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    return model, t, sd


@pytest.fixture(scope="module")
def loaded():
    return {name: _load(name) for name in NAMES}


def test_both_namings_load_to_the_same_weights(loaded):
    (m1, t1, sd1), (m2, t2, sd2) = loaded[NAMES[0]], loaded[NAMES[1]]
    assert any(".conv1b3." in k for k in sd2) and any(".conv33." in k for k in sd2)
    assert any(".conv1b7." in k for k in sd1) and not any(".conv1b3." in k for k in sd1)
    a, b = m1.state_dict(), m2.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(t1["input.0"], t2["input.0"])
    for i in range(3):
        assert torch.equal(t1[f"output.{i}"], t2[f"output.{i}"])


def test_decoder_reproduces_every_output(loaded):
    model, t, _ = loaded[NAMES[0]]
    feats = {}
    handle = model.layers_up[0].register_forward_hook(lambda mod, inp, out: feats.setdefault("layer0", out))
    with torch.no_grad():
        outs = model(t["input.0"])
    handle.remove()
    assert len(outs) == 3
    refs = [t[f"output.{i}"] for i in range(3)] + [t["features.0"]]
    for out, ref in zip(list(outs) + [feats["layer0"]], refs):
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()

"""The ``mamba_simple`` golden fixture (mamba-ssm's 1-D ``Mamba``): load it and check a backend against it."""
from __future__ import annotations

import json

import torch
from paths import FIXTURES
from safetensors.torch import load_file


def load_mamba_fixture() -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(json meta, upstream state dict, tensors) of ``tests/fixtures/mamba_simple.*``."""
    meta = json.loads((FIXTURES / "mamba_simple.json").read_text())
    tensors = load_file(str(FIXTURES / "mamba_simple.safetensors"))
    sd = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return meta, sd, tensors


def check_fixture(backend: str, rel_tol: float = 1e-5) -> float:
    """Build the fixture's ``Mamba``, load the upstream weights strictly, compare; returns the relative error."""
    from vision_ssm.layers import Mamba

    meta, sd, t = load_mamba_fixture()
    kw = {k: v for k, v in meta["builder_kwargs"].items() if k != "use_fast_path"}
    m = Mamba(**kw, backend=backend).eval()
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        y = m(t["input.0"])
    ref = t["output.0"]
    rel = ((y - ref).abs().max() / ref.abs().max()).item()
    assert y.shape == ref.shape and rel <= rel_tol, f"{backend}: relative error {rel:.3g} > {rel_tol}"
    return rel

"""Helpers: build the registered VMamba config that a golden fixture was made with, and read its tensors."""
from __future__ import annotations

import json

import timm
import torch
from paths import FIXTURES as FIXTURES_DIR
from safetensors.torch import load_file

FIXTURES = FIXTURES_DIR
# fixture -> the registered model whose settings it uses (tests/fixtures/README: dims 16, depths 1,1,2,1, 10 classes)
VMAMBA_FIXTURES = {
    "vmamba_v0_small": "vmamba_tiny",
    "vmamba_v2_small": "vmamba_tiny_s1l8",
    "vmamba_v2r2_small": "vmamba_tiny_s2l5",
}


def fixture(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(json meta, upstream state dict, all tensors)`` of a fixture."""
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    tensors = load_file(FIXTURES / f"{name}.safetensors")
    sd = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return meta, sd, tensors


def model_kwargs(meta: dict) -> dict:
    kw = meta["builder_kwargs"]
    return dict(dims=kw["dims"], depths=tuple(kw["depths"]), num_classes=kw["num_classes"])


def create(name: str, **kw) -> torch.nn.Module:
    meta, _, _ = fixture(name)
    torch.manual_seed(0)
    return timm.create_model(VMAMBA_FIXTURES[name], **{**model_kwargs(meta), **kw})


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()

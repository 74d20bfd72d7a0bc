"""Shared helpers of the MambaVision tests: the golden fixtures produced by the upstream code."""
from __future__ import annotations

import json

import torch
from paths import FIXTURES as FIXTURES_DIR
from safetensors.torch import load_file

from vision_ssm.models.mambavision import MambaVision

FIXTURES = FIXTURES_DIR
NAMES = ("mambavision_small", "mambavision_small_ls")


def load_fixture(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return (json meta, tensors, upstream state dict) of fixture ``name``."""
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    tensors = load_file(str(FIXTURES / f"{name}.safetensors"))
    sd = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return meta, tensors, sd


def model_kwargs(meta: dict) -> dict:
    """Our constructor arguments for the fixture's upstream ``MambaVision(...)`` call."""
    kw = meta["builder_kwargs"]
    return dict(
        dim=kw["dim"],
        in_dim=kw["in_dim"],
        depths=tuple(kw["depths"]),
        num_heads=tuple(kw["num_heads"]),
        window_size=tuple(kw["window_size"]),
        mlp_ratio=kw["mlp_ratio"],
        num_classes=kw["num_classes"],
        layer_scale=kw["layer_scale"],
        layer_scale_conv=kw["layer_scale_conv"],
        drop_path_rate=kw["drop_path_rate"],
    )


def build(meta: dict, **overrides) -> MambaVision:
    return MambaVision(**dict(model_kwargs(meta), **overrides))


def assert_close_rel(out: torch.Tensor, ref: torch.Tensor, what: str, rel: float = 1e-5) -> None:
    """max |out - ref| <= rel * max |ref| (the fixtures' tolerance)."""
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err = (out - ref).abs().max().item()
    tol = rel * ref.abs().max().item()
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:.3g}"

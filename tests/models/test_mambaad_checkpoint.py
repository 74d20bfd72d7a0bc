"""Loading official MambaAD / ADer checkpoints: containers, key namings, stored scan indices, timm's file overlay."""
from __future__ import annotations

import re

import pytest
import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from vision_ssm.models.mambaad import checkpoint_filter_fn
from vision_ssm.ops import scan_order


def _randomized(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
        for k, v in model.state_dict().items()
    }


def _as_ader(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename to ADer's LSS keys and add its unused depthwise 3×3 (``conv33``) to every LSS module."""
    out = {}
    for k, v in sd.items():
        k2 = k.replace(".conv1b7.", ".conv1b3.").replace(".conv1a7.", ".conv1a3.")
        out[k2] = v
        m = re.match(r"(.*\.blocks\.\d+)\.conv77\.0\.weight$", k)
        if m:
            out[f"{m.group(1)}.conv33.0.weight"] = torch.randn(v.shape[0], 1, 3, 3)
    return out


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return timm.create_model("test_mambaad")


@pytest.mark.parametrize("naming", ["mambaad", "ader"])
def test_whole_model_checkpoint_loads_through_timm_file_overlay(tiny, tmp_path, naming):
    sd = _randomized(tiny, seed=1)
    ckpt = sd if naming == "mambaad" else {"net": _as_ader(sd), "optimizer": {"lr": 0.005}, "epoch": 3}
    assert any(k.startswith(p) for k in sd for p in ("net_t.", "mff_oce.", "net_s."))
    path = tmp_path / f"{naming}.pth"
    torch.save(ckpt, path)
    m = timm.create_model("test_mambaad", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    got = m.state_dict()
    assert got.keys() == sd.keys()
    assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_filter_unwraps_ddp_prefix_and_is_idempotent(tiny):
    sd = tiny.state_dict()
    out = checkpoint_filter_fn({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tiny)
    assert out.keys() == sd.keys()
    assert checkpoint_filter_fn(out, tiny).keys() == sd.keys()


def test_stored_scan_index_of_another_family_is_rejected(tiny):
    sd = dict(tiny.state_dict())
    key = next(k for k in sd if k.endswith("scans.index_flat"))
    L = sd[key].numel()
    s = int(L**0.5)
    sweep = scan_order("sweep", s, s)
    assert not torch.equal(sweep, scan_order("hilbert", s, s))
    sd[key] = sweep.view(1, 1, -1)
    with pytest.raises(ValueError, match="hilbert"):
        checkpoint_filter_fn(sd, tiny)


def test_checkpoint_from_another_image_size_or_without_index_loads(tiny):
    sd = _randomized(tiny, seed=2)  # stored indices for 64×64 input (decoder maps 2..16)
    for img_size in (128, None):
        torch.manual_seed(0)
        m = timm.create_model("test_mambaad", img_size=img_size or 64, store_scan_index=img_size is not None)
        out = checkpoint_filter_fn(sd, m)
        missing, unexpected = m.load_state_dict(out, strict=True)
        assert not missing and not unexpected
        got = m.state_dict()
        assert all(torch.equal(got[k], v) for k, v in sd.items() if ".scans." not in k)
        if img_size == 128:
            key = "net_s.layers_up.3.blocks.0.smm_blocks.0.self_attention.scans.index_flat"
            assert torch.equal(got[key].view(-1), scan_order("hilbert", 32, 32))
        else:
            assert not any(".scans." in k for k in got)


def test_encoder_checkpoint_loads_a_local_file(tmp_path):
    torch.manual_seed(3)
    enc = timm.create_model("resnet18", channels=(16, 32, 64, 128), stem_width=16)
    path = tmp_path / "encoder.pth"
    torch.save(enc.state_dict(), path)
    m = timm.create_model("test_mambaad", encoder_checkpoint=str(path))
    ref = enc.state_dict()
    for k, v in m.net_t.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert not any(p.requires_grad for p in m.net_t.parameters())

"""Registered MambaVision variants: parameter/key counts, attention placement, pretrained cfgs (models.md §2)."""
from __future__ import annotations

import pytest
import timm
import torch

from vision_ssm.layers import MambaVisionAttention, MambaVisionMixer

# name -> (official params in M (README, 2 decimals), official state_dict keys, stage-3/4 attention block indices)
OFFICIAL = {
    "mambavision_tiny": (31.79, 252, (range(4, 8), range(2, 4))),
    "mambavision_tiny2": (35.10, 298, (range(6, 11), range(2, 4))),
    "mambavision_small": (50.14, 285, (range(4, 7), range(3, 5))),
    "mambavision_base": (97.69, 356, (range(5, 10), range(3, 5))),
    "mambavision_base_21k": (97.69, 356, (range(5, 10), range(3, 5))),
    "mambavision_large": (227.96, 356, (range(5, 10), range(3, 5))),
    "mambavision_large_21k": (227.96, 356, (range(5, 10), range(3, 5))),
    "mambavision_large2": (241.55, 389, (range(6, 12), range(3, 5))),
    "mambavision_large2_512_21k": (241.55, 389, (range(6, 12), range(3, 5))),
    "mambavision_large3_256_21k": (739.57, 601, (range(10, 20), range(5, 10))),
    "mambavision_large3_512_21k": (739.57, 601, (range(10, 20), range(5, 10))),
}

# name -> (HF repo, file, crop_pct, crop_mode, input side)
CFGS = {
    "mambavision_tiny.in1k": ("nvidia/MambaVision-T-1K", "mambavision_tiny_1k.pth.tar", 1.0, "center", 224),
    "mambavision_tiny2.in1k": ("nvidia/MambaVision-T2-1K", "mambavision_tiny2_1k.pth.tar", 0.98, "center", 224),
    "mambavision_small.in1k": ("nvidia/MambaVision-S-1K", "mambavision_small_1k.pth.tar", 0.93, "center", 224),
    "mambavision_base.in1k": ("nvidia/MambaVision-B-1K", "mambavision_base_1k.pth.tar", 1.0, "center", 224),
    "mambavision_base_21k.in21k_ft_in1k": (
        "nvidia/MambaVision-B-21K", "mambavision_base_21k.pth.tar", 1.0, "center", 224),
    "mambavision_large.in1k": ("nvidia/MambaVision-L-1K", "mambavision_large_1k.pth.tar", 1.0, "center", 224),
    "mambavision_large_21k.in21k_ft_in1k": (
        "nvidia/MambaVision-L-21K", "mambavision_large_21k.pth.tar", 1.0, "center", 224),
    "mambavision_large2.in1k": ("nvidia/MambaVision-L2-1K", "mambavision_large2_1k.pth.tar", 1.0, "center", 224),
    "mambavision_large2_512_21k.in21k_ft_in1k": (
        "nvidia/MambaVision-L2-512-21K", "mambavision_L2_21k_240m_512.pth.tar", 0.93, "squash", 512),
    "mambavision_large3_256_21k.in21k_ft_in1k": (
        "nvidia/MambaVision-L3-256-21K", "mambavision_L3_21k_740m_256.pth.tar", 1.0, "center", 256),
    "mambavision_large3_512_21k.in21k_ft_in1k": (
        "nvidia/MambaVision-L3-512-21K", "mambavision_L3_21k_740m_512.pth.tar", 0.93, "squash", 512),
}


def test_every_variant_is_registered():
    names = set(timm.list_models("*mambavision*"))
    assert names == set(OFFICIAL) | {"test_mambavision"}
    assert set(timm.list_models(module="mambavision")) == names


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_and_key_counts_equal_official(name):
    params_m, n_keys, (attn3, attn4) = OFFICIAL[name]
    with torch.device("meta"):
        model = timm.create_model(name)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 2) == pytest.approx(params_m, abs=1e-9), f"{name}: {n} parameters"
    assert len(model.state_dict()) == n_keys
    for stage, attn in ((model.stages[2], attn3), (model.stages[3], attn4)):
        kinds = [isinstance(b.mixer, MambaVisionAttention) for b in stage.blocks]
        assert [i for i, k in enumerate(kinds) if k] == list(attn)
        assert all(isinstance(b.mixer, MambaVisionMixer) for i, b in enumerate(stage.blocks) if i not in attn)
    assert model.num_features == model.head_hidden_size == model.stages[3].blocks[0].norm1.normalized_shape[0]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]


@pytest.mark.parametrize("tag", sorted(CFGS))
def test_pretrained_cfgs(tag):
    repo, file, crop_pct, crop_mode, side = CFGS[tag]
    cfg = timm.models.get_pretrained_cfg(tag).to_dict()
    assert cfg["hf_hub_id"] == repo and cfg["hf_hub_filename"] == file
    assert cfg["url"] == f"https://huggingface.co/{repo}/resolve/main/{file}"
    assert cfg["crop_pct"] == crop_pct and cfg["crop_mode"] == crop_mode
    assert cfg["input_size"] == (3, side, side) and cfg["pool_size"] == (side // 32, side // 32)
    assert cfg["num_classes"] == 1000 and cfg["interpolation"] == "bicubic"
    assert cfg["first_conv"] == "stem.0" and cfg["classifier"] == "head.fc"
    arch = tag.split(".")[0]
    assert [t for t in timm.list_pretrained(arch + "*") if t.split(".")[0] == arch] == [tag]


def test_layer_scale_only_where_official():
    with torch.device("meta"):
        tiny = timm.create_model("mambavision_tiny")
        base = timm.create_model("mambavision_base")
    small = timm.create_model("test_mambavision", layer_scale=0.5)
    assert torch.equal(small.stages[3].blocks[1].gamma_2, torch.full((128,), 0.5))
    assert not any("gamma" in k for k in tiny.state_dict())
    gammas = [k for k in base.state_dict() if "gamma" in k]
    assert gammas and all(k.startswith(("stages.2.", "stages.3.")) for k in gammas)


def test_upstream_init_zeroes_dt_bias_unless_kept():
    torch.manual_seed(0)
    model = timm.create_model("test_mambavision")
    kept = timm.create_model("test_mambavision", keep_dt_init=True)
    mixer = model.stages[2].blocks[0].mixer
    assert torch.count_nonzero(mixer.dt_proj.bias) == 0  # upstream _init_weights resets it
    assert mixer.dt_proj.weight.std() < 0.05  # trunc_normal(.02)
    dt = torch.nn.functional.softplus(kept.stages[2].blocks[0].mixer.dt_proj.bias)
    assert ((dt > 0.9e-3) & (dt < 0.11)).all()  # Mamba's log-uniform dt init in [1e-3, 0.1]
    assert torch.equal(mixer.A_log, torch.log(torch.arange(1.0, 9.0)).expand(mixer.A_log.shape))
    assert torch.equal(mixer.D, torch.ones_like(mixer.D))


def test_no_weight_decay_patterns_match_ssm_parameters():
    import fnmatch

    model = timm.create_model("test_mambavision")
    pats = model.no_weight_decay()
    hit = {n for n, _ in model.named_parameters() if any(fnmatch.fnmatch(n, p) for p in pats)}
    assert hit and all(n.endswith((".A_log", ".D")) for n in hit)
    assert {n for n, p in model.named_parameters() if n.endswith("A_log")} <= hit

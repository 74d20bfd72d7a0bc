"""Fusion-Mamba dual-stream backbone: registration, the stream/FMB wiring (each enhanced map feeds the next
stage of its own stream), feature_info, official FMB parameter totals and the official-checkpoint key map
(models.md §5.2-5.4)."""
from __future__ import annotations

import pytest
import timm
import torch

from vision_ssm.models.fusion_mamba import FusionMambaBackbone, checkpoint_filter_fn


def _pair(bs=2, size=64, ir_chans=1):
    g = torch.Generator().manual_seed(0)
    return torch.randn(bs, 3, size, size, generator=g), torch.randn(bs, ir_chans, size, size, generator=g)


def test_registered():
    names = set(timm.list_models("*fusion_mamba*"))
    assert {"fusion_mamba_cs3darknet_l", "fusion_mamba_cs3darknet_s", "test_fusion_mamba"} <= names


def test_outputs_follow_feature_info():
    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba").eval()
    with torch.no_grad():
        out = m(*_pair())
    info = m.feature_info
    assert len(out) == len(info) == 3 and info.reduction() == [8, 16, 32]
    for t, c, r in zip(out, info.channels(), info.reduction()):
        assert t.shape == (2, c, 64 // r, 64 // r)
    assert [i["module"] for i in info] == ["fmb.0", "fmb.1", "fmb.2"]


def test_each_enhanced_map_feeds_the_next_stage_of_its_own_stream():
    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba").eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.fmb[0].register_forward_hook(lambda mod, args, out: seen.update(fmb0=out))]
    for stream in ("rgb", "ir"):
        first_of_next = getattr(m, "_segments" if stream == "rgb" else "_segments_ir")[1][0]
        hooks.append(getattr(m, stream)[first_of_next].register_forward_pre_hook(
            lambda mod, args, s=stream: seen.update({s: args[0]})))
    with torch.no_grad():
        fused, rgbs, irs = m.forward_pyramid(*_pair())
    for h in hooks:
        h.remove()
    f_r, f_ir, p = seen["fmb0"]
    assert torch.equal(seen["rgb"], f_r) and torch.equal(seen["ir"], f_ir)
    assert torch.equal(fused[0], p) and torch.equal(p, f_r + f_ir)
    assert torch.equal(rgbs[0], f_r) and torch.equal(irs[0], f_ir)


def test_the_two_streams_are_independent_weights():
    m = timm.create_model("test_fusion_mamba")
    assert m.rgb.conv1[0].weight.shape[1] == 3 and m.ir.conv1[0].weight.shape[1] == 1
    assert {k.split(".", 1)[1] for k in m.state_dict() if k.startswith("rgb.")} == \
        {k.split(".", 1)[1] for k in m.state_dict() if k.startswith("ir.")}


def test_gradients_reach_both_streams_and_every_fmb():
    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba").train()
    sum(t.square().mean() for t in m(*_pair())).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing[:10]


def test_pair_must_be_aligned():
    m = timm.create_model("test_fusion_mamba").eval()
    with pytest.raises(ValueError, match="same size"):
        m(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 32, 32))


def test_official_width_fmbs_hold_the_official_parameters():
    """models.md §5.3: the three official FMBs hold 170.4M parameters; paper mode adds ≈16.7M."""
    with torch.device("meta"):
        official = timm.create_model("fusion_mamba_cs3darknet_l", official=True)
        paper = timm.create_model("fusion_mamba_cs3darknet_l")
    assert official.feature_info.channels() == [256, 512, 1024]
    n_off = sum(p.numel() for p in official.fmb.parameters())
    n_pap = sum(p.numel() for p in paper.fmb.parameters())
    assert round(n_off / 1e6, 1) == 170.4 and round((n_pap - n_off) / 1e6, 1) == 16.7


def test_official_checkpoint_keys_map_onto_the_fmbs():
    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba", official=True)
    index = {"fmb.0.sscs.": 10, "fmb.0.dssf.": 11, "fmb.1.sscs.": 18, "fmb.1.dssf.": 19,
             "fmb.2.sscs.": 28, "fmb.2.dssf.": 29}
    official = {"model.0.conv.weight": torch.zeros(1), "model.49.m.0.weight": torch.zeros(1)}
    for k, v in m.state_dict().items():
        for prefix, i in index.items():
            if k.startswith(prefix):
                official[f"model.{i}.{k[len(prefix):]}"] = v.clone() + 1
    assert "model.11.blocks.1.self_attention.x_proj_weight" in official  # the official CrossLayer keys
    sd = checkpoint_filter_fn({"model": official}, m)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected
    assert missing and all(k.startswith(("rgb.", "ir.")) for k in missing)
    assert torch.equal(m.fmb[1].dssf.blocks[1].self_attention.A_logs,
                       official["model.19.blocks.1.self_attention.A_logs"])
    own = m.state_dict()
    assert checkpoint_filter_fn(own, m).keys() == own.keys()


def test_non_feature_list_streams_are_refused():
    with pytest.raises(ValueError, match="stage by stage"):
        FusionMambaBackbone("test_vit", out_indices=(1, 2, 3))


def test_grad_checkpointing_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba").train()
    x = _pair()

    def run():
        m.zero_grad()
        out = m(*x)
        sum(t.square().mean() for t in out).backward()
        return [t.detach() for t in out], {n: p.grad.clone() for n, p in m.named_parameters()}

    out_a, grads_a = run()
    m.set_grad_checkpointing(True)
    out_b, grads_b = run()
    for a, b in zip(out_a, out_b):
        torch.testing.assert_close(a, b)
    for n, g in grads_a.items():
        torch.testing.assert_close(grads_b[n], g, rtol=1e-4, atol=1e-6, msg=n)


def test_official_flag_reaches_every_fmb():
    m = timm.create_model("test_fusion_mamba", official=True)
    assert all(f.official and not f.dssf.chain and f.dssf.blocks[0].self_attention.share_ssm for f in m.fmb)
    p = timm.create_model("test_fusion_mamba")
    assert all(f.dssf.chain and not f.dssf.blocks[0].self_attention.share_ssm for f in p.fmb)


def test_torch_export_of_the_pair_matches_eager():
    from vision_ssm.ops import use_backend

    torch.manual_seed(0)
    m = timm.create_model("test_fusion_mamba").eval()
    x = _pair(bs=1)
    with use_backend("chunked"):
        with torch.no_grad():
            eager = m(*x)
        program = torch.export.export(m, x)
    with torch.no_grad():
        got = program.module()(*x)
    for a, b in zip(got, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

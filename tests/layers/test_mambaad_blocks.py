"""MambaAD blocks: HSS (upstream fixtures, every scan family, K=2/4/8), LSS module and layer, PatchExpand2D,
MFF_OCE, and the ADer → MambaAD key map (blocks.md §3, models.md §3.3)."""
from __future__ import annotations

import json

import pytest
import torch
from paths import FIXTURES as FIXTURES_DIR
from safetensors.torch import load_file

from vision_ssm.layers import MFFOCE, HSSBlock, LSSLayer, LSSModule, PatchExpand2D
from vision_ssm.layers.lss import group_lss_depth, remap_lss_state_dict
from vision_ssm.ops import scan_order

FIXTURES = FIXTURES_DIR
HSS = sorted(p.stem for p in FIXTURES.glob("mambaad_hss_*.safetensors"))


def _state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}


def test_every_hss_fixture_is_present():
    want = {f"mambaad_hss_{s}_k8" for s in ("sweep", "scan", "zorder", "zigzag", "hilbert")}
    want |= {"mambaad_hss_hilbert_k4", "mambaad_hss_hilbert_k2"}
    assert want <= set(HSS)


@pytest.mark.parametrize("name", HSS)
def test_hss_block_reproduces_upstream(name):
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    kw = meta["builder_kwargs"]
    t = load_file(FIXTURES / f"{name}.safetensors")
    block = HSSBlock(
        kw["hidden_dim"], d_state=kw["d_state"], scan=kw["scan_type"], directions=kw["num_direction"],
        scan_index_size=kw["size"],
    ).eval()
    missing, unexpected = block.load_state_dict(_state_dict(t), strict=True)
    assert not missing and not unexpected
    # the stored upstream index is the family's base order at that size
    stored = block.self_attention.scans.index_flat.view(-1)
    assert torch.equal(stored, scan_order(kw["scan_type"], kw["size"], kw["size"]))
    with torch.no_grad():
        out = block(t["input.0"])
    ref = t["output.0"]
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_hss_block_is_residual_with_drop_path():
    torch.manual_seed(0)
    block = HSSBlock(8, drop_path=0.5, scan="zigzag", directions=4).train()
    x = torch.randn(64, 4, 6, 8)  # any H×W
    with torch.no_grad():
        y = block(x)
        branch = block.self_attention(block.ln_1(x))
    kept = (y - x).flatten(1).abs().amax(1) > 0
    assert 0 < kept.sum() < 64  # some samples drop the branch, some keep it (scaled by 1/keep_prob)
    torch.testing.assert_close((y - x)[kept], branch[kept] / 0.5, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y[~kept], x[~kept])


def test_patch_expand_pixel_layout():
    pe = PatchExpand2D(6, 3)
    with torch.no_grad():
        pe.norm.weight.fill_(1.0)
        pe.norm.bias.zero_()
    x = torch.randn(2, 4, 5, 6)
    y = pe(x)
    assert y.shape == (2, 8, 10, 3)
    e = pe.expand(x)  # (B, H, W, 12) read as (p1, p2, c)
    for p1 in range(2):
        for p2 in range(2):
            chunk = e[..., (2 * p1 + p2) * 3:(2 * p1 + p2 + 1) * 3]
            torch.testing.assert_close(y[:, p1::2, p2::2], torch.nn.functional.layer_norm(chunk, (3,)))
    assert {k: tuple(v.shape) for k, v in pe.state_dict().items()} == {
        "expand.weight": (12, 6), "norm.weight": (3,), "norm.bias": (3,)}


def test_lss_grouping_rule():
    assert group_lss_depth(3) == (1, 3)
    assert group_lss_depth(4) == (2, 2)
    assert group_lss_depth(6) == (2, 3)
    assert group_lss_depth(2) == (1, 2)
    for bad in (1, 5, 7, 0):
        with pytest.raises(ValueError):
            group_lss_depth(bad)
    layer = LSSLayer(8, 4, drop_path=[0.3, 0.2, 0.1, 0.0], upsample=True, d_state=4)
    assert len(layer.blocks) == 2 and all(len(m.smm_blocks) == 2 for m in layer.blocks)
    rates = [[b.drop_path.drop_prob for b in m.smm_blocks] for m in layer.blocks]
    assert rates == [[0.3, 0.3], [0.2, 0.2]]  # module m uses entry m of the slice, shared by its blocks


def test_lss_module_composition():
    torch.manual_seed(0)
    m = LSSModule(8, depth=2, d_state=4, scan="sweep", directions=2).eval()
    x = torch.randn(2, 6, 6, 8)
    with torch.no_grad():
        y = m(x)
        xc = x.permute(0, 3, 1, 2)
        ssm = m.smm_blocks[1](m.smm_blocks[0](x)).permute(0, 3, 1, 2)
        b5 = m.conv1a5(m.conv55(m.conv1b5(xc)))
        b7 = m.conv1a7(m.conv77(m.conv1b7(xc)))
        ref = (m.finalconv11(torch.cat([ssm, b5, b7], 1)) + xc).permute(0, 2, 3, 1)
    torch.testing.assert_close(y, ref)
    assert m.conv55[0].kernel_size == (5, 5) and m.conv55[0].groups == 8 and m.conv55[0].bias is None
    assert m.conv77[0].kernel_size == (7, 7) and m.conv77[0].groups == 8 and m.conv77[0].bias is None
    branch_keys = {k for k in m.state_dict() if not k.startswith("smm_blocks.")}
    assert branch_keys == {  # MambaAD naming; InstanceNorm (affine=False) has no keys
        f"{c}.0.{p}" for c in ("conv1b5", "conv1a5", "conv1b7", "conv1a7") for p in ("weight", "bias")
    } | {"conv55.0.weight", "conv77.0.weight", "finalconv11.weight", "finalconv11.bias"}


def test_ader_key_map():
    sd = {
        "net_s.layers_up.0.blocks.0.conv1b3.0.weight": torch.zeros(1),
        "layers_up.0.blocks.0.conv1a3.0.bias": torch.ones(1),
        "blocks.0.conv33.0.weight": torch.zeros(1),
        "conv33.0.weight": torch.zeros(1),
        "conv1b5.0.weight": torch.zeros(2),
        "mff_oce.conv1.weight": torch.zeros(3),
    }
    out = remap_lss_state_dict(sd)
    assert set(out) == {
        "net_s.layers_up.0.blocks.0.conv1b7.0.weight", "layers_up.0.blocks.0.conv1a7.0.bias",
        "conv1b5.0.weight", "mff_oce.conv1.weight",
    }
    assert out["layers_up.0.blocks.0.conv1a7.0.bias"] is sd["layers_up.0.blocks.0.conv1a3.0.bias"]


def test_mff_oce_layout_and_shapes():
    m = MFFOCE((64, 128, 256))
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["conv1.weight"] == (128, 64, 3, 3)
    assert shapes["conv2.weight"] == (256, 128, 3, 3)
    assert shapes["conv21.weight"] == (128, 128, 1, 1) and "conv21.bias" in shapes
    assert shapes["conv31.weight"] == (256, 256, 1, 1) and "conv31.bias" in shapes
    assert shapes["convf.weight"] == (256, 256, 1, 1) and "convf.bias" in shapes
    assert shapes["bn_layer.0.conv1.weight"] == (128, 256, 1, 1)
    assert shapes["bn_layer.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["bn_layer.0.conv3.weight"] == (512, 128, 1, 1)
    assert shapes["bn_layer.0.downsample.0.weight"] == (512, 256, 1, 1)
    assert shapes["bn_layer.1.conv1.weight"] == (128, 512, 1, 1)
    assert "bn_layer.2.bn3.num_batches_tracked" in shapes and "bn_layer.3.conv1.weight" not in shapes
    assert sum(p.numel() for p in m.parameters()) == 1_458_304  # models.md: 1.46M
    small = MFFOCE((8, 16, 32)).eval()
    f = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    assert small(f).shape == (2, 64, 2, 2)

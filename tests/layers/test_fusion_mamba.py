"""Fusion-Mamba blocks: Eq. 5 channel swap, SSCS / DSSF / DSSF stack / FMB against the upstream fixtures
(official mode), the paper behaviour (Eqs. 9–12, chaining), gradients, scan backends and the official
parameter counts (blocks.md §6, models.md §5.3)."""
from __future__ import annotations

import json
import pathlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import FIXTURES
from safetensors.torch import load_file
from torch import nn

from vision_ssm.layers import DSSF, FMB, SSCS, DSSFStack, channel_swap
from vision_ssm.ops import available_backends

NAMES = ("fusionmamba_sscs", "fusionmamba_dssf_block", "fusionmamba_crosslayer_d2")
CORE = ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds")
BACKENDS = [b for b in ("reference", "chunked", "numba") if b in available_backends("cpu")]


def _load(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    t = load_file(FIXTURES / f"{name}.safetensors")
    sd = {k[len("state_dict."):]: v for k, v in t.items() if k.startswith("state_dict.")}
    return meta, t, sd


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _official(name: str, **kw) -> nn.Module:
    meta, _, sd = _load(name)
    dim = meta["builder_kwargs"].get("dim", meta["builder_kwargs"].get("hidden_dim"))
    if name == "fusionmamba_sscs":
        m = SSCS(dim, meta["builder_kwargs"]["depth"], **kw)
    elif name == "fusionmamba_dssf_block":
        m = DSSF(dim, official=True, **kw)
    else:
        m = DSSFStack(dim, meta["builder_kwargs"]["depth"], official=True, **kw)
    m.load_state_dict(sd, strict=True)
    assert len(m.state_dict()) == meta["keys"]
    assert sum(p.numel() for p in m.parameters()) == meta["num_parameters"]
    return m.eval()


# ---------------------------------------------------------------------------------------------- Eq. 5


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 3), q=st.integers(1, 5), H=st.integers(1, 4), W=st.integers(1, 4),
       last=st.booleans())
def test_channel_swap_is_the_exact_quarter_interleaving_of_eq5(B, q, H, W, last):
    C = 4 * q
    n = B * C * H * W
    r = torch.arange(n, dtype=torch.float64).view(B, C, H, W)
    i = r + n  # every value distinct across both maps
    dim = 1
    if last:
        r, i, dim = r.permute(0, 2, 3, 1), i.permute(0, 2, 3, 1), -1
    t_r, t_ir = channel_swap(r, i, dim), channel_swap(i, r, dim)
    R, I, TR, TIR = (x.chunk(4, dim) for x in (r, i, t_r, t_ir))
    for k, (src_r, src_ir) in enumerate(((R, I), (I, R), (R, I), (I, R))):  # T_R = [R1|I2|R3|I4]
        assert torch.equal(TR[k], src_r[k]) and TR[k].shape[dim] == q
        assert torch.equal(TIR[k], src_ir[k])  # T_IR = [I1|R2|I3|R4]
    # together the two outputs hold every input value exactly once
    assert torch.equal(torch.cat([t_r, t_ir]).flatten().sort().values, torch.arange(2 * n, dtype=torch.float64))


def test_channel_swap_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 4"):
        channel_swap(torch.zeros(1, 6, 2, 2), torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match="shapes differ"):
        channel_swap(torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 2, 3))
    with pytest.raises(ValueError, match="divisible by 4"):
        SSCS(10)


def test_sscs_feeds_the_swapped_maps_to_its_branches():
    m = SSCS(8)
    m.blocks1, m.blocks2 = nn.Identity(), nn.Identity()
    r, i = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 3, 5)
    t_r, t_ir = m(r, i)
    assert torch.equal(t_r, channel_swap(r, i)) and torch.equal(t_ir, channel_swap(i, r))


# --------------------------------------------------------------------------------- official fixtures


@pytest.mark.parametrize("name", NAMES)
def test_official_mode_reproduces_the_upstream_fixture(name):
    _, t, _ = _load(name)
    m = _official(name)
    with torch.no_grad():
        out = m(t["input.0"], t["input.1"])
    for k in range(2):
        assert out[k].dtype == torch.float32
        assert _rel(out[k], t[f"output.{k}"]) <= 1e-5, (name, k)


def test_crosslayer_blocks_each_see_the_layer_input():
    """features.0-3: every block's output, each computed from the same (permuted) layer input."""
    _, t, _ = _load("fusionmamba_crosslayer_d2")
    m = _official("fusionmamba_crosslayer_d2")
    x = [t[f"input.{k}"].permute(0, 2, 3, 1) for k in range(2)]
    with torch.no_grad():
        for j, blk in enumerate(m.blocks):
            out = blk(*x)
            for k in range(2):
                assert _rel(out[k], t[f"features.{2 * j + k}"]) <= 1e-5


def test_chaining_moves_the_official_outputs_as_documented():
    """Fixture sensitivity: chaining the two blocks moves the outputs by 6.817 (max abs)."""
    meta, t, sd = _load("fusionmamba_crosslayer_d2")
    chained = DSSFStack(32, 2, official=True, chain=True).eval()
    chained.load_state_dict(sd, strict=True)
    with torch.no_grad():
        out = chained(t["input.0"], t["input.1"])
        x = [t[f"input.{k}"].permute(0, 2, 3, 1) for k in range(2)]
        for blk in chained.blocks:  # chained = block 1 applied to block 0's output
            x = blk(*x)
    want = meta["sensitivity"]["max abs change of the outputs if the blocks were chained (paper text) instead"]
    change = max((out[k] - t[f"output.{k}"]).abs().max().item() for k in range(2))
    assert change == pytest.approx(want, rel=1e-4)
    for k in range(2):
        assert _rel(out[k], x[k].permute(0, 3, 1, 2)) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_official_fixtures_on_every_scan_backend(name, backend):
    _, t, _ = _load(name)
    m = _official(name, backend=backend)
    with torch.no_grad():
        out = m(t["input.0"], t["input.1"])
    for k in range(2):
        assert _rel(out[k], t[f"output.{k}"]) <= 1e-5, (name, backend, k)


# --------------------------------------------------------------------------------------- paper mode


def test_paper_mode_keys_double_only_the_ssm_core():
    official = set(DSSF(16, official=True).state_dict())
    paper = set(DSSF(16).state_dict())
    core = {f"self_attention.{n}" for n in CORE}
    assert official - paper == core
    assert paper - official == {c + s for c in core for s in "12"}
    assert set(DSSF(16, share_ssm=True).state_dict()) == official


def test_paper_mode_follows_eqs_9_to_11():
    """Eq. 9 is common to both modes; Eq. 10 uses the original y_R in the paper and the updated y'_R upstream."""
    _, t, sd = _load("fusionmamba_dssf_block")
    paper = DSSF(32).eval()  # per-modality cores, both set to the official shared one
    psd = {k: v for k, v in sd.items() if k.split(".")[-1] not in CORE}
    for name in CORE:
        for s in "12":
            psd[f"self_attention.{name}{s}"] = sd[f"self_attention.{name}"]
    paper.load_state_dict(psd, strict=True)
    x_r, x_ir = t["input.0"], t["input.1"]
    with torch.no_grad():
        out_r, out_ir = paper(x_r, x_ir)
        mix = paper.self_attention
        y_r, z_r = mix._branch(1, paper.ln_1(x_r))
        y_ir, z_ir = mix._branch(2, paper.ln_2(x_ir))
        want_r = x_r + mix.out_proj1(y_r * z_r + z_r * y_ir)  # Eqs. 9, 11
        want_ir = x_ir + mix.out_proj2(y_ir * z_ir + z_ir * y_r)  # Eqs. 10, 11
    assert _rel(out_r, want_r) <= 1e-6 and _rel(out_ir, want_ir) <= 1e-6
    assert _rel(out_r, t["output.0"]) <= 1e-5  # Eq. 9: as upstream
    assert _rel(out_ir, t["output.1"]) > 1e-2  # Eq. 10: the original y_R, not upstream's y'_R


def test_cores_are_per_modality_in_paper_mode():
    torch.manual_seed(0)
    m = DSSF(16).eval()
    x_r, x_ir = torch.randn(1, 4, 4, 16), torch.randn(1, 4, 4, 16)
    mix = m.self_attention
    with torch.no_grad():
        before = mix._branch(1, x_r)[0], mix._branch(2, x_ir)[0]
        mix.A_logs2.add_(0.5)  # only the IR core
        after = mix._branch(1, x_r)[0], mix._branch(2, x_ir)[0]
    assert torch.equal(before[0], after[0]) and not torch.allclose(before[1], after[1])


def test_chained_stack_composes_its_blocks_and_official_keeps_only_the_last():
    torch.manual_seed(0)
    paper = DSSFStack(8, 3).eval()
    official = DSSFStack(8, 3, chain=False).eval()
    official.load_state_dict(paper.state_dict())
    x_r, x_ir = torch.randn(2, 8, 4, 6), torch.randn(2, 8, 4, 6)
    with torch.no_grad():
        chained, last_only = paper(x_r, x_ir), official(x_r, x_ir)
        x = (x_r.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1))
        single = paper.blocks[-1](*x)
        for blk in paper.blocks:
            x = blk(*x)
    for k in range(2):
        assert torch.equal(chained[k], x[k].permute(0, 3, 1, 2))
        assert torch.equal(last_only[k], single[k].permute(0, 3, 1, 2))
        assert (chained[k] - last_only[k]).abs().max() > 1e-2


def test_fmb_is_sscs_then_dssf_then_eq12_in_either_layout():
    torch.manual_seed(0)
    m = FMB(8, depth=2).eval()
    m_last = FMB(8, depth=2, channels_first=False).eval()
    m_last.load_state_dict(m.state_dict())
    r, i = torch.randn(2, 8, 5, 3), torch.randn(2, 8, 5, 3)
    with torch.no_grad():
        f_r, f_ir, p = m(r, i)
        sscs = SSCS(8)
        sscs.load_state_dict(m.sscs.state_dict())
        stack = DSSFStack(8, 2)
        stack.load_state_dict(m.dssf.state_dict())
        b_r, b_ir = stack(*sscs(r, i))
        nhwc = m_last(r.permute(0, 2, 3, 1), i.permute(0, 2, 3, 1))
    torch.testing.assert_close(f_r, r + b_r, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f_ir, i + b_ir, rtol=1e-6, atol=1e-6)
    assert torch.equal(p, f_r + f_ir)
    for a, b in zip((f_r, f_ir, p), nhwc):
        assert torch.equal(a, b.permute(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------- gradients


def _grads(m: nn.Module) -> dict[str, bool]:
    torch.manual_seed(1)
    r, i = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    f_r, f_ir, p = m(r, i)
    (f_r.square().mean() + f_ir.square().mean() + p.square().mean()).backward()
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in m.named_parameters()}


def test_gradients_reach_every_parameter_in_paper_mode():
    torch.manual_seed(0)
    got = _grads(FMB(8, depth=3).train())
    assert all(got.values()), sorted(n for n, ok in got.items() if not ok)


def test_official_mode_trains_exactly_what_the_official_code_trains():
    """Upstream, only the SSCS and the last DSSF block receive gradients (blocks.md §6.3)."""
    torch.manual_seed(0)
    got = _grads(FMB(8, depth=3, official=True).train())
    trained = {n for n, ok in got.items() if ok}
    assert trained == {n for n in got if n.startswith(("sscs.", "dssf.blocks.2."))}
    assert any(n.startswith("dssf.blocks.0.") for n in got)  # the dead blocks exist (key layout), untrained


# ------------------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("official", [False, True])
def test_scan_backends_agree(official):
    torch.manual_seed(0)
    ref = FMB(8, depth=2, official=official, backend="reference").eval()
    r, i = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        want = ref(r, i)
        for backend in BACKENDS:
            m = FMB(8, depth=2, official=official, backend=backend).eval()
            m.load_state_dict(ref.state_dict())
            got = m(r, i)
            for a, b in zip(got, want):
                assert _rel(a, b) <= 1e-5, backend


def test_no_cuda_calls_in_the_blocks():
    import vision_ssm.layers.fusion_mamba as mod

    assert ".cuda(" not in pathlib.Path(mod.__file__).read_text()


# ------------------------------------------------------------------------------- parameter counts


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("dim, sscs_m, stack_m, extra", [
    (256, 1.14, 7.74, 167_936), (512, 4.11, 29.11, 466_944), (1024, 15.55, 112.75, 1_458_176),
])
def test_official_parameter_counts(dim, sscs_m, stack_m, extra):
    """models.md §5.3 / blocks.md §6.3, 6.5: SSCS, CrossLayer (DSSF ×8) and the paper-mode extra per block."""
    sscs = _count(SSCS(dim, device="meta"))
    stack = _count(DSSFStack(dim, 8, official=True, device="meta"))
    assert round(sscs / 1e6, 2) == sscs_m
    assert round(stack / 1e6, 2) == stack_m
    assert _count(FMB(dim, official=True, device="meta")) == sscs + stack
    assert _count(DSSF(dim, device="meta")) - _count(DSSF(dim, official=True, device="meta")) == extra
    if dim == 256:
        assert _count(DSSF(dim, official=True, device="meta")) == 967_680


def test_fmb_totals_at_p3_p5():
    """The three official FMBs hold 170.4M parameters; paper mode adds ≈16.7M (3 × 8 doubled cores)."""
    official = sum(_count(FMB(c, official=True, device="meta")) for c in (256, 512, 1024))
    paper = sum(_count(FMB(c, device="meta")) for c in (256, 512, 1024))
    assert round(official / 1e6, 1) == 170.4
    assert round((paper - official) / 1e6, 1) == 16.7

"""The option path of issue #16: ``ssm_cfg`` / ``backend=`` from every model family down to its mixer and op,
one name per concept in blocks (deprecated spellings warn and build the same module), norm layers given as a
name or a class, ``PatchExpand2D``/``PatchMerging2D`` argument semantics, the shared Mamba init and the one
checkpoint-unwrapping helper."""
from __future__ import annotations

import functools
import math

import pytest
import timm
import torch
from timm.layers import LayerNorm2d
from torch import nn

import vision_ssm  # noqa: F401  (registers the models)
from vision_ssm.layers import (
    SS2D,
    HSSBlock,
    LSSModule,
    MambaVisionBlock,
    MambaVisionMixer,
    PatchExpand2D,
    PatchMerging2D,
    VSSBlock,
)
from vision_ssm.layers.weight_init import A_log_init, D_init, init_dt_proj_
from vision_ssm.models._checkpoint import clean_checkpoint
from vision_ssm.ops import DirectionSpec


def _mixers(model: nn.Module, cls: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, cls)]


def _same_modules(a: nn.Module, b: nn.Module) -> None:
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _spy(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a pass-through that records each call's ``backend`` keyword."""
    calls, real = [], getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(kwargs.get("backend"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


# ---- backend= and ssm_cfg reach the mixer and the op, for every family -------------------------------------------

def test_mambavision_backend_reaches_the_op(monkeypatch):
    import vision_ssm.layers.mambavision_mixer as mixer_mod

    big = timm.create_model("mambavision_tiny", backend="reference", ssm_cfg={"dt_rank": 3})
    assert {(m.backend, m.dt_rank) for m in _mixers(big, MambaVisionMixer)} == {("reference", 3)}
    calls = _spy(monkeypatch, mixer_mod, "selective_scan")
    model = timm.create_model("test_mambavision", backend="reference").eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls and set(calls) == {"reference"}


def test_vmamba_ssm_cfg_and_backend_reach_ss2d(monkeypatch):
    import vision_ssm.layers.ss2d as ss2d_mod

    model = timm.create_model("test_vmamba", ssm_cfg={"d_state": 2, "dt_init": "constant"}, backend="reference")
    ops = _mixers(model, SS2D)
    assert ops and all(m.d_state == 2 and m.backend == "reference" and m.channels_first for m in ops)
    assert all(torch.all(m.dt_projs_weight == m.dt_rank ** -0.5) for m in ops)  # dt_init="constant" arrived
    calls = _spy(monkeypatch, ss2d_mod, "ss2d_scan")
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 64))
    assert len(calls) == len(ops) and set(calls) == {"reference"}


def test_vmamba_upstream_names_fold_into_one_ssm_cfg():
    model = timm.create_model("test_vmamba", ssm_d_state=3, ssm_conv=5, ssm_cfg={"ssm_ratio": 2.0})
    assert model.ssm_cfg["d_state"] == 3 and model.ssm_cfg["d_conv"] == 5 and model.ssm_cfg["ssm_ratio"] == 2.0
    for m in _mixers(model, SS2D):
        assert (m.d_state, m.conv2d.kernel_size, m.d_inner) == (3, (5, 5), 2 * m.d_model)


def test_mambaad_ssm_cfg_and_backend_reach_ss2d(monkeypatch):
    import vision_ssm.layers.ss2d as ss2d_mod

    model = timm.create_model("test_mambaad", ssm_cfg={"ssm_ratio": 1.0}, backend="reference",
                              num_directions=4, store_scan_index=False).eval()
    ops = _mixers(model, SS2D)
    assert ops and all(m.d_inner == m.d_model and m.backend == "reference" and m.directions == 4 for m in ops)
    calls = _spy(monkeypatch, ss2d_mod, "ss2d_scan")
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert len(calls) == len(ops) and set(calls) == {"reference"}


def test_block_overrides_beat_ssm_cfg():
    blk = HSSBlock(8, ssm_cfg={"d_state": 4, "scan": "sweep", "directions": 2}, directions=4)
    assert (blk.self_attention.d_state, blk.scan, blk.directions) == (4, "sweep", 4)
    assert HSSBlock(8).self_attention.scan == "hilbert" and HSSBlock(8).directions == 8  # MambaAD defaults
    vss = VSSBlock(8, ssm_cfg={"d_state": 4, "ssm_ratio": 1.0}, d_state=2, backend="chunked")
    assert (vss.op.d_state, vss.op.d_inner, vss.op.backend) == (2, 8, "chunked")
    assert not hasattr(VSSBlock(8, ssm_cfg={"ssm_ratio": 0}), "op")  # ssm_ratio 0 drops the branch


@pytest.mark.parametrize("scan", ["hilbert-4", ("hilbert", 4)])
def test_a_scan_with_its_own_direction_count_beats_the_block_default(scan):
    # HSSBlock defaults to 8 directions; a scan that names K=4 must give K=4, not a conflict error
    blk = HSSBlock(8, scan=scan)
    assert (blk.scan, blk.directions) == ("hilbert", 4)
    assert HSSBlock(8, ssm_cfg={"scan": scan}).directions == 4
    with pytest.raises(ValueError, match="K=4, directions=8"):  # an explicit conflicting count is still refused
        HSSBlock(8, scan=scan, directions=8)


# ---- one name per concept: deprecated spellings warn and build the same module -----------------------------------

@pytest.mark.parametrize("old,new", [
    (lambda: VSSBlock(hidden_dim=8, ssm_d_state=4, ssm_conv=5, ssm_gate=False, ssm_kwargs={"dt_rank": 2}),
     lambda: VSSBlock(8, d_state=4, ssm_cfg={"d_conv": 5, "gate": False, "dt_rank": 2})),
    (lambda: HSSBlock(8, num_directions=4, ssm_ratio=1.0),
     lambda: HSSBlock(8, directions=4, ssm_cfg={"ssm_ratio": 1.0})),
    (lambda: LSSModule(8, num_directions=2), lambda: LSSModule(8, directions=2)),
    (lambda: MambaVisionMixer(dim=16), lambda: MambaVisionMixer(16)),
    (lambda: MambaVisionBlock(16, 2, mixer_kwargs={"d_state": 4}),
     lambda: MambaVisionBlock(16, 2, ssm_cfg={"d_state": 4})),
])
def test_deprecated_keywords_warn_and_build_the_same_module(old, new):
    torch.manual_seed(0)
    with pytest.warns(FutureWarning, match="deprecated"):
        a = old()
    torch.manual_seed(0)
    _same_modules(a, new())


def test_ss2d_accepts_every_direction_description():
    ref = SS2D(8, scan="hilbert", directions=8)
    for scan in ("hilbert-8", ("hilbert", 8), DirectionSpec("hilbert", 8)):
        m = SS2D(8, scan=scan)
        assert (m.scan, m.directions) == ("hilbert", 8) and m.x_proj_weight.shape == ref.x_proj_weight.shape
    assert SS2D(8).directions == 4 and SS2D(8, scan="scan").scan == "snake"
    with pytest.raises(ValueError, match="K=8"):
        SS2D(8, scan="hilbert-8", directions=4)


def test_ss2d_resolves_directions_once_per_forward(monkeypatch):
    import vision_ssm.layers.ss2d as ss2d_mod

    calls = []
    real = ss2d_mod.resolve_directions
    monkeypatch.setattr(ss2d_mod, "resolve_directions", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    m = SS2D(8, d_state=2, scan="zigzag", directions=4).eval()
    with torch.no_grad():
        m(torch.randn(1, 5, 6, 8))
    assert calls == [(5, 6)]


# ---- norm_layer: a name or a class gives the same module ---------------------------------------------------------

@pytest.mark.parametrize("name,cls,channels_first", [
    ("ln", nn.LayerNorm, False),
    ("ln2d", functools.partial(LayerNorm2d, eps=1e-5), True),
    ("bn", nn.BatchNorm2d, True),
])
def test_vss_norm_layer_name_or_class(name, cls, channels_first):
    torch.manual_seed(0)
    a = VSSBlock(8, norm_layer=name, ssm_cfg={"d_state": 2})
    torch.manual_seed(0)
    b = VSSBlock(8, norm_layer=cls, ssm_cfg={"d_state": 2})
    assert a.channels_first == b.channels_first == a.op.channels_first == channels_first
    _same_modules(a, b)
    torch.manual_seed(0)
    a = PatchMerging2D(8, 16, name)
    torch.manual_seed(0)
    _same_modules(a, PatchMerging2D(8, 16, cls))


def test_norm_layer_name_or_class_in_mambaad_and_mambavision_blocks():
    for make in (lambda n: HSSBlock(8, norm_layer=n), lambda n: PatchExpand2D(8, 4, norm_layer=n),
                 lambda n: MambaVisionBlock(16, 2, norm_layer=n)):
        torch.manual_seed(0)
        a = make("ln")
        torch.manual_seed(0)
        _same_modules(a, make(nn.LayerNorm))
    with pytest.raises(ValueError, match="channels_first"):
        HSSBlock(8, norm_layer="ln2d")  # HSS is channels-last
    with pytest.raises(ValueError, match="channels_first"):
        VSSBlock(8, norm_layer="ln", channels_first=True)


# ---- PatchExpand2D / PatchMerging2D: input channels first, explicit out_dim --------------------------------------

def test_patch_expand_and_merging_take_input_channels_first():
    pe = PatchExpand2D(8, 4)
    assert pe(torch.randn(2, 3, 5, 8)).shape == (2, 6, 10, 4)
    assert pe.expand.weight.shape == (16, 8) and pe.norm.weight.shape == (4,)
    assert PatchExpand2D(8, 8)(torch.randn(1, 2, 2, 8)).shape == (1, 4, 4, 8)
    pm = PatchMerging2D(8, 16)
    assert pm(torch.randn(2, 6, 5, 8)).shape == (2, 3, 3, 16)
    assert pm.reduction.weight.shape == (16, 32)
    with pytest.raises(TypeError):
        PatchExpand2D(8)  # out_dim is explicit (the old one-argument form meant *output* channels)
    with pytest.raises(ValueError, match=r"expected x as \(B, H, W, C\) channels-last input with C=8"):
        pe(torch.randn(1, 2, 2, 4))


# ---- the shared Mamba init ---------------------------------------------------------------------------------------

def test_shared_mamba_init_matches_the_formula_and_rng_order():
    torch.manual_seed(0)
    w, b = torch.empty(3, 6, 2), torch.empty(3, 6)
    init_dt_proj_(w, b, dt_rank=2, dt_min=1e-3, dt_max=0.1)
    torch.manual_seed(0)
    w_ref = torch.empty(3, 6, 2).uniform_(-2 ** -0.5, 2 ** -0.5)
    dt = torch.exp(torch.rand(3, 6) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
    assert torch.equal(w, w_ref) and torch.equal(b, dt + torch.log(-torch.expm1(-dt)))
    assert torch.allclose(torch.nn.functional.softplus(b), dt)
    assert torch.equal(A_log_init(3, 4), torch.log(torch.tensor([1.0, 2.0, 3.0])).expand(4, 3))
    assert torch.equal(D_init(5), torch.ones(5))
    with pytest.raises(ValueError, match="dt_init"):
        init_dt_proj_(w, b, 2, dt_init="nope")


# ---- one checkpoint unwrapping -----------------------------------------------------------------------------------

def test_clean_checkpoint_unwraps_and_strips():
    t = torch.zeros(1)
    assert clean_checkpoint({"model": {"module.a": t}, "epoch": 3}) == {"a": t}
    assert clean_checkpoint({"net": {"_orig_mod.module.a": t}}) == {"a": t}
    assert clean_checkpoint({"model": {"state_dict": {"a": t}}}) == {"a": t}  # nested containers
    assert clean_checkpoint({"state_dict": {"a": t}, "state_dict_ema": {"b": t}}, use_ema=True) == {"b": t}
    assert clean_checkpoint({"model.a": t, "model.b": t}, common_prefixes=("model.",)) == {"a": t, "b": t}
    assert clean_checkpoint({"model.a": t, "b": t}, common_prefixes=("model.",)) == {"model.a": t, "b": t}
    assert clean_checkpoint({"a": t, "meta": "x"}, non_tensors="drop") == {"a": t}
    with pytest.raises(ValueError, match="'meta'"):
        clean_checkpoint({"a": t, "meta": "x"})

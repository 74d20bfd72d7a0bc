"""timm's model contract, checked for every model vision_ssm registers (modelled on timm's
``tests/test_models.py``, with its ``forward_intermediates`` tests applied to our families).

Model tiers (to keep CI on 2 CPU cores fast):

- ``FULL``: every check — the ``test_*`` CI models (one per family).
- ``TINY``: the tiny configs of each family: forward, classifier contract and ``features_only``.
- everything else registered by vision_ssm: default-cfg metadata checks, without running the model
  (their parameter counts and fixture outputs are tested by each family's own tests).
"""
from __future__ import annotations

import math

import pytest
import timm
import timm.optim
import torch
from timm.models import model_entrypoint

from vision_ssm.ops import use_backend


def _our_models() -> list[str]:
    return sorted(n for n in timm.list_models() if model_entrypoint(n).__module__.startswith("vision_ssm."))


ALL = _our_models()
# Models that get every check (CPU, small inputs), and the tiny configs that get the main ones.
# Two-input models (``model(rgb, aux)``): the single-image checks below do not apply; the parts of the contract
# that fit them are tested in their own file (tests/models/test_mambaalign_model.py).
TWO_INPUT = {n for n in ALL if n.startswith(("mambaalign_", "test_mambaalign"))}
FULL = [n for n in ALL if n.startswith("test_") and n not in TWO_INPUT]
TINY = [n for n in ALL if n in {"vmamba_tiny_s1l8", "vmamba_tiny", "mambavision_tiny"}]
SIZE = 64  # input side for the run-time checks


def _is_classifier(model) -> bool:
    return hasattr(model, "get_classifier") and hasattr(model, "forward_head")


def _create(name, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kw)


def _x(bs=1, size=SIZE):
    return torch.randn(bs, 3, size, size, generator=torch.Generator().manual_seed(1))


def _call(model, x):
    """``model(x)``; a dual-stream RGB–IR model (it has ``ir_chans``) gets ``(x, x_ir)``, an aligned IR image."""
    ir_chans = getattr(model, "ir_chans", None)
    return model(x) if ir_chans is None else model(x, x[:, :ir_chans])


def test_vision_ssm_registers_models():
    assert ALL, "import vision_ssm registered no timm model"


@pytest.mark.parametrize("name", ALL)
def test_default_cfg_metadata(name):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg is not None, f"{name} has no pretrained cfg"
    d = cfg.to_dict()
    for key in ("input_size", "mean", "std", "first_conv"):
        assert d.get(key) is not None, f"{name}: pretrained cfg lacks {key}"
    assert len(d["input_size"]) == 3 and d["input_size"][0] == 3
    if d.get("num_classes", 0):
        assert d.get("classifier"), f"{name}: classifier missing in cfg"


@pytest.mark.parametrize("name", FULL + TINY)
def test_forward_and_grad_checkpointing(name):
    model = _create(name).eval()
    x = _x()
    with torch.no_grad():
        out = _call(model, x)
    leaves = out if isinstance(out, (list, tuple)) else [out]
    for t in _flatten(leaves):
        assert torch.isfinite(t).all(), f"{name}: non-finite output"
    if _is_classifier(model):
        assert out.shape == (1, model.num_classes)
    try:
        model.set_grad_checkpointing(True)
    except (NotImplementedError, AssertionError):
        return
    with torch.no_grad():
        out2 = _call(model, x)
    for a, b in zip(_flatten(leaves), _flatten(out2 if isinstance(out2, (list, tuple)) else [out2])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _flatten(seq):
    for t in seq:
        if isinstance(t, (list, tuple)):
            yield from _flatten(t)
        else:
            yield t


@pytest.mark.parametrize("name", FULL)
def test_backward_every_trainable_param_gets_grad(name):
    model = _create(name, num_classes=42) if _is_classifier(_create_meta(name)) else _create(name)
    model.train()
    out = _call(model, _x(bs=2))
    loss = sum(t.float().mean() for t in _flatten(out if isinstance(out, (list, tuple)) else [out]))
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in params if p.grad is None]
    assert params and not missing, f"{name}: parameters without grad: {missing[:10]}"
    if _is_classifier(model):
        assert out.shape[-1] == 42
    assert all(torch.isfinite(p.grad).all() for _, p in params)


def _create_meta(name):
    with torch.device("meta"):
        return _create(name)


@pytest.mark.parametrize("name", FULL + TINY)
def test_classifier_contract(name):
    model = _create(name).eval()
    if not _is_classifier(model):
        pytest.skip(f"{name} is not a classifier")
    cfg = model.pretrained_cfg
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    x = _x()
    with torch.no_grad():
        feat = model.forward_features(x)
        assert feat.dim() == 4 and feat.shape[1] == model.num_features, "forward_features must be unpooled NCHW"
        red = SIZE / cfg["input_size"][-1]
        exp = tuple(max(1, math.ceil(p * red)) for p in cfg["pool_size"])
        assert tuple(feat.shape[-2:]) == exp, f"pool_size {cfg['pool_size']} inconsistent with {feat.shape}"
        pre = model.forward_head(feat, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        sd = model.state_dict()
        assert cfg["classifier"] + ".weight" in sd, f"classifier {cfg['classifier']} not in state dict"
        assert cfg["first_conv"] + ".weight" in sd, f"first_conv {cfg['first_conv']} not in state dict"
        assert model.get_classifier() is not None
        model.reset_classifier(0)
        assert model.num_classes == 0
        assert model(x).shape == (1, model.head_hidden_size)
        model.reset_classifier(0, "")
        out = model(x)
        assert out.dim() == 4 and out.shape[1] == model.num_features
        model.reset_classifier(7)
        assert model(x).shape == (1, 7) and model.num_classes == 7
    m2 = _create(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert m2(x).dim() == 4


@pytest.mark.parametrize("name", FULL)
def test_weight_decay_and_param_groups(name):
    model = _create(name)
    if not _is_classifier(model):
        pytest.skip(f"{name} is not a classifier")
    nwd = model.no_weight_decay()
    assert isinstance(nwd, (set, list, tuple)) and nwd
    matcher = model.group_matcher()
    assert "stem" in matcher and "blocks" in matcher
    # layer-wise lr decay exercises group_matcher on every parameter
    opt = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "name,feature_cls", [(n, c) for n in FULL for c in (None, "getter")] + [(n, None) for n in TINY]
)
def test_features_only(name, feature_cls):
    if not _is_classifier(_create_meta(name)):
        pytest.skip(f"{name} is not a backbone")
    kw = {} if feature_cls is None else {"feature_cls": feature_cls}
    model = _create(name, features_only=True, **kw).eval()
    with torch.no_grad():
        feats = model(_x())
    info = model.feature_info
    assert len(feats) >= 3 and len(feats) == len(info.channels())
    for f, c, r in zip(feats, info.channels(), info.reduction()):
        assert f.shape[1] == c
        assert f.shape[-1] <= math.ceil(SIZE / r) + 1


@pytest.mark.parametrize("name", FULL)
def test_forward_intermediates(name):
    model = _create(name).eval()
    if not hasattr(model, "forward_intermediates"):
        pytest.skip(f"{name} has no forward_intermediates")
    x = _x()
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, output_fmt="NCHW")
        ref = model.forward_features(x)
        torch.testing.assert_close(final, ref)
        info = model.feature_info
        assert len(inter) == len(info)
        for t, i in zip(inter, info):
            assert t.shape[1] == i["num_chs"]
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert len(last2) == 2
        for a, b in zip(last2, inter[-2:]):
            torch.testing.assert_close(a, b)
        model.set_grad_checkpointing(True)
        final2, inter2 = model.forward_intermediates(x, output_fmt="NCHW")
        torch.testing.assert_close(final, final2, rtol=1e-4, atol=1e-5)
        idx = model.prune_intermediate_layers(indices=1)
        assert len(idx) == 1 and model.num_classes == 0


@pytest.mark.parametrize("name", [n for n in FULL if n.startswith("test_")])
def test_fx_feature_extraction_equals_eager(name):
    model = _create(name).eval()
    if not _is_classifier(model):
        pytest.skip(f"{name} is not a backbone")
    fx_model = _create(name, features_only=True, feature_cls="fx").eval()
    eager = _create(name, features_only=True).eval()
    x = _x()
    with torch.no_grad():
        a = fx_model(x)
        b = eager(x)
    assert len(a) == len(b)
    for t, u in zip(a, b):
        torch.testing.assert_close(t, u, rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in FULL if n.startswith("test_")])
def test_same_output_on_every_cpu_backend(name):
    from vision_ssm.ops import available_backends

    model = _create(name).eval()
    x = _x()
    outs = {}
    for backend in available_backends("cpu"):
        with use_backend(backend), torch.no_grad():
            o = _call(model, x)
        outs[backend] = list(_flatten(o if isinstance(o, (list, tuple)) else [o]))
    ref = outs.get("reference")
    for backend, o in outs.items():
        for a, b in zip(o, ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"{name}: backend {backend} differs")

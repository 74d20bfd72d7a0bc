"""Official-checkpoint handling: checkpoint_filter_fn, timm pretrained loading from a file, the safe loader
(a pickled config object is never executed) and the ``convert`` CLI."""
from __future__ import annotations

import pickle
import sys

import pytest
import timm
import torch
from _vmamba_fixtures import create, fixture, model_kwargs, rel_err
from safetensors.torch import load_file

from vision_ssm.__main__ import main as cli
from vision_ssm.models import load_official
from vision_ssm.models.vmamba import checkpoint_filter_fn

V0, V2 = "vmamba_v0_small", "vmamba_v2_small"


def _logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


def _old_names(sd):
    """Rename to the older upstream layout that VSSM._load_from_state_dict still accepts."""
    out = {}
    for k, v in sd.items():
        k = k.replace("patch_embed.0.", "patch_embed.proj.").replace("patch_embed.2.", "patch_embed.norm.")
        k = k.replace(".norm.", ".ln_1.") if ".blocks." in k and ".op." not in k and ".norm2." not in k else k
        k = k.replace(".op.", ".self_attention.")
        k = k.replace("classifier.norm.", "norm.").replace("classifier.head.", "head.")
        out[k] = v
    return out


def test_filter_accepts_wrapped_old_names_and_module_prefix():
    _, sd, t = fixture(V0)
    model = create(V0)
    wrapped = {"model": {"module." + k: v for k, v in _old_names(sd).items()}, "epoch": 3}
    assert any(".ln_1." in k for k in wrapped["model"]) and "norm.weight" in {k[7:] for k in wrapped["model"]}
    out = checkpoint_filter_fn(wrapped, model)
    assert set(out) == set(model.state_dict())
    model.load_state_dict(out, strict=True)
    assert rel_err(_logits(model, t["input.0"]), t["output.0"]) <= 1e-5


def test_filter_reshapes_conv_shaped_linear_weights():
    _, sd, t = fixture(V2)
    model = create(V2)
    conv_sd = {k: (v[:, :, None, None] if v.dim() == 2 and (".mlp.fc" in k or "_proj.weight" in k) else v)
               for k, v in sd.items()}
    assert sum(v.dim() == 4 and v.shape[2:] == (1, 1) for v in conv_sd.values()) >= 8
    model.load_state_dict(checkpoint_filter_fn(conv_sd, model), strict=True)
    assert rel_err(_logits(model, t["input.0"]), t["output.0"]) <= 1e-5


def test_filter_drops_backbone_outnorms():
    _, sd, _ = fixture(V0)
    model = create(V0)
    extra = dict(sd, **{f"outnorm{i}.weight": torch.ones(4) for i in range(4)})
    assert set(checkpoint_filter_fn(extra, model)) == set(sd)


def test_mismatched_file_is_rejected_with_keys_named():
    _, sd_v0, _ = fixture(V0)
    with pytest.raises(ValueError) as err:
        checkpoint_filter_fn(sd_v0, create(V2))
    msg = str(err.value)
    assert "missing keys: " in msg and "layers.0.blocks.0.mlp.fc1.weight" in msg
    assert "unexpected keys: " in msg and "layers.0.downsample.reduction.weight" in msg
    assert "shape mismatches: " in msg and "in_proj.weight" in msg
    _, sd, _ = fixture(V2)
    broken = {k: v for k, v in sd.items() if k != "layers.2.blocks.1.op.A_logs"}
    with pytest.raises(ValueError, match=r"missing keys: layers\.2\.blocks\.1\.op\.A_logs; unexpected keys: none"):
        checkpoint_filter_fn(broken, create(V2))


def _write_official(path, sd, with_config: bool):
    """An official-style training checkpoint; optionally with a pickled config object of an unimportable class."""
    ckpt = {"model": sd, "epoch": 292, "max_accuracy": 82.2}
    if with_config:
        mod = type(sys)("_vssm_fake_yacs")
        exec(  # a class that would announce itself if unpickling ever ran its code
            "class CfgNode(dict):\n"
            "    def __setstate__(self, state):\n"
            "        raise RuntimeError('config code executed')\n"
            "    def __reduce_ex__(self, proto):\n"
            "        return (CfgNode, (), dict(self.__dict__), None, iter(self.items()))\n",
            mod.__dict__,
        )
        mod.CfgNode.__module__ = mod.__name__
        sys.modules[mod.__name__] = mod
        try:
            cfg = mod.CfgNode(MODEL=mod.CfgNode(NAME="vssm_tiny"), TRAIN={"EPOCHS": 300})
            cfg.__dict__["__immutable__"] = True
            ckpt["config"] = cfg
            torch.save(ckpt, path)
        finally:
            del sys.modules[mod.__name__]
    else:
        torch.save(ckpt, path)
    return path


def test_safe_loader_never_runs_pickled_config(tmp_path):
    _, sd, _ = fixture(V0)
    path = _write_official(tmp_path / "official.pth", sd, with_config=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what timm's loader does
    loaded = load_official(path)
    assert "_vssm_fake_yacs" not in sys.modules
    assert set(loaded) == set(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)


@pytest.mark.parametrize("with_config", [True, False])
def test_timm_create_model_pretrained_from_official_file(tmp_path, with_config):
    meta, sd, t = fixture(V0)
    path = _write_official(tmp_path / "vssm.pth", sd, with_config)
    model = timm.create_model("vmamba_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                              **model_kwargs(meta))
    assert rel_err(_logits(model, t["input.0"]), t["output.0"]) <= 1e-5
    feats = timm.create_model("vmamba_tiny", pretrained=True, features_only=True,
                              pretrained_cfg_overlay=dict(file=str(path)), **model_kwargs(meta)).eval()
    with torch.no_grad():
        maps = feats(t["input.0"])
    assert feats.feature_info.channels() == [16, 32, 64, 128] and feats.feature_info.reduction() == [4, 8, 16, 32]
    for i, m in enumerate(maps):
        assert rel_err(m, t[f"features.{i}"].permute(0, 3, 1, 2)) <= 1e-5


def test_pretrained_with_other_num_classes_and_in_chans(tmp_path):
    meta, sd, t = fixture(V2)
    path = _write_official(tmp_path / "vssm.pth", sd, with_config=False)
    kw = dict(model_kwargs(meta), num_classes=5, in_chans=1)
    model = timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kw)
    own = model.state_dict()
    assert own["classifier.head.weight"].shape == (5, 128)
    assert own["patch_embed.0.weight"].shape[1] == 1
    assert torch.equal(own["layers.2.blocks.1.op.A_logs"], sd["layers.2.blocks.1.op.A_logs"])


def test_convert_cli_writes_safetensors_that_timm_loads(tmp_path, capsys):
    meta, sd, t = fixture(V2)
    src = _write_official(tmp_path / "vssm.pth", _old_names(sd), with_config=True)
    dst = tmp_path / "vssm.safetensors"
    assert cli(["convert", str(src), str(dst)]) == 0
    raw = load_file(dst)
    assert set(raw) == set(_old_names(sd))  # plain conversion keeps the file's names
    checked = tmp_path / "checked.safetensors"
    args = '{"dims": 16, "depths": [1, 1, 2, 1], "num_classes": 10}'
    assert cli(["convert", str(src), str(checked), "--model", "vmamba_tiny_s1l8", "--model-args", args]) == 0
    assert "checked against vmamba_tiny_s1l8" in capsys.readouterr().out
    assert set(load_file(checked)) == set(sd)
    model = timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=dict(file=str(checked)),
                              **model_kwargs(meta))
    assert rel_err(_logits(model, t["input.0"]), t["output.0"]) <= 1e-5


def test_pretrained_from_url_uses_the_safe_loader(tmp_path):
    meta, sd, t = fixture(V0)
    path = _write_official(tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth", sd, with_config=True)
    model = timm.create_model("vmamba_tiny", pretrained=True, pretrained_cfg_overlay=dict(url=path.as_uri()),
                              cache_dir=tmp_path / "cache", **model_kwargs(meta))
    assert rel_err(_logits(model, t["input.0"]), t["output.0"]) <= 1e-5
    assert (tmp_path / "cache").exists()

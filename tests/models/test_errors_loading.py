"""Clear errors when loading weights (issue #23, item 1): a file that is not a checkpoint is told so (never advised to
be unpickled), ``pretrained=True`` offline says how to give a local file, and bad ``--model-args`` JSON in
``python -m vision_ssm convert`` is a one-line error."""
from __future__ import annotations

import io
import urllib.error
import zipfile

import pytest
import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from vision_ssm.__main__ import main as cli
from vision_ssm.models._official import NotACheckpointError, check_checkpoint_file, load_official
from vision_ssm.models._pretrained import PretrainedWeightsUnavailableError


def _truncated_zip(path):
    buf = io.BytesIO()
    torch.save({"w": torch.ones(64)}, buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


@pytest.mark.parametrize("kind, what", [
    ("html", r"it is neither a zip archive \(torch.save\) nor a pickle \(first bytes b'<!DOCTYPE"),
    ("truncated", r"it is a damaged or truncated zip archive \(the torch.save format\)"),
    ("empty", r"it is neither a zip archive \(torch.save\) nor a pickle \(first bytes b''\)"),
])
def test_not_a_checkpoint_is_not_told_to_unpickle(tmp_path, kind, what):
    path = tmp_path / "weights.pth"
    if kind == "html":
        path.write_text("<!DOCTYPE html><html>404</html>")
    elif kind == "truncated":
        _truncated_zip(path)
    else:
        path.write_bytes(b"")
    with pytest.raises(NotACheckpointError, match=rf"weights.pth is not a checkpoint: {what}") as err:
        load_official(path)
    assert "unsafe" not in str(err.value) and "weights_only=False" not in str(err.value)


def test_broken_safetensors_header(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(NotACheckpointError, match=r"w.safetensors is not a checkpoint: it has no safetensors header"):
        check_checkpoint_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint file not found: .*nope.pth"):
        load_official(tmp_path / "nope.pth")


def test_a_real_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(NotACheckpointError, match=r"w.pth is not a checkpoint: torch.load cannot read it") as err:
        load_official(path)
    assert "unsafe" not in str(err.value)


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_pretrained_overlay_file_that_is_not_a_checkpoint(tmp_path, name):
    path = tmp_path / "downloaded.pth"
    path.write_text("<html>rate limited</html>")
    with pytest.raises(NotACheckpointError, match=r"downloaded.pth is not a checkpoint") as err:
        timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "weights_only" not in str(err.value)


def test_pretrained_offline_tells_how_to_give_a_local_file(monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(builder, "download_cached_file", offline)
    monkeypatch.setattr(builder, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsUnavailableError,
                       match=r"test_vmamba: pretrained=True could not fetch the weights \(URLError: .*Name or service "
                             r"not known.*\). Without network access, give a local file instead: "
                             r"timm.create_model\('test_vmamba', pretrained=True, "
                             r"pretrained_cfg_overlay=dict\(file='/path/to/w.pth'\)\)"):
        timm.create_model("test_vmamba", pretrained=True, pretrained_cfg_overlay=dict(url="https://example.invalid/w.pth"))


def test_pretrained_without_registered_weights():
    with pytest.raises(PretrainedWeightsUnavailableError,
                       match=r"No pretrained weights exist for test_mambaad \(none are registered\); use "
                             r"pretrained=False, or give a local file instead: .*pretrained_cfg_overlay=dict\(file="):
        timm.create_model("test_mambaad", pretrained=True)


def test_convert_cli_bad_model_args_json(tmp_path, capsys):
    src = tmp_path / "w.pth"
    torch.save({"w": torch.ones(2)}, src)
    assert cli(["convert", str(src), str(tmp_path / "o.safetensors"), "--model-args", "{num_classes: 10}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: --model-args is not valid JSON (Expecting property name enclosed in double quotes")
    assert cli(["convert", str(src), str(tmp_path / "o.safetensors"), "--model-args", "[10]"]) == 2
    assert "--model-args must be a JSON object of keyword arguments" in capsys.readouterr().err


def test_convert_cli_not_a_checkpoint(tmp_path, capsys):
    src = tmp_path / "w.pth"
    src.write_text("not a checkpoint")
    assert cli(["convert", str(src), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "w.pth is not a checkpoint" in err and "Traceback" not in err


def test_pretrained_offline_names_the_registered_file(monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(builder, "download_cached_file", offline)
    with torch.device("meta"), pytest.raises(PretrainedWeightsUnavailableError,
                                             match=r"pretrained_cfg_overlay=dict\(file='/path/to/"
                                                   r"vssmtiny_dp01_ckpt_epoch_292.pth'\)"):
        timm.create_model("vmamba_tiny", pretrained=True)

"""Backend selection: argument > use_backend > VISION_SSM_BACKEND > automatic; errors; lazy imports."""
from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys

import pytest
import torch

from vision_ssm.ops import (
    ENV_VAR,
    BackendSpec,
    available_backends,
    register_backend,
    registered_backends,
    selective_scan,
    use_backend,
)
from vision_ssm.ops.scan import registry as reg

HAS_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture
def spies(monkeypatch):
    """Two recording CPU backends, ``spy_a`` and ``spy_b``, removed afterwards."""
    calls: list[str] = []
    monkeypatch.delenv(ENV_VAR, raising=False)
    for name in ("spy_a", "spy_b"):
        spec = BackendSpec(name=name, target="builtins:print", devices=("cpu",), priority={"cpu": -5})

        def fn(*args, _n=name):
            calls.append(_n)
            return args[0]

        spec._fn = fn
        register_backend(spec)
    yield calls
    for name in ("spy_a", "spy_b"):
        reg._BACKENDS.pop(name, None)


def _scan(**kw):
    u = torch.randn(1, 2, 3)
    return selective_scan(u, torch.rand(1, 2, 3), -torch.rand(2, 1), torch.randn(1, 1, 3), torch.randn(1, 1, 3), **kw)


def test_precedence(spies, monkeypatch):
    """argument > use_backend() > VISION_SSM_BACKEND > automatic: code beats the environment."""
    monkeypatch.setenv(ENV_VAR, "spy_b")
    _scan()
    assert spies[-1] == "spy_b"  # env beats the automatic policy
    with use_backend("spy_a"):
        _scan()
        assert spies[-1] == "spy_a"  # context beats env
        _scan(backend="spy_b")
        assert spies[-1] == "spy_b"  # argument beats context
        with use_backend(None):
            _scan()
            assert spies[-1] == "spy_b"  # use_backend(None) hands the choice back to env / automatic
    monkeypatch.delenv(ENV_VAR)
    with use_backend("spy_b"), use_backend("spy_a"):
        _scan()
        assert spies[-1] == "spy_a"  # innermost context wins
    assert reg.resolve_backend_name(torch.device("cpu")) == available_backends("cpu")[0]


def test_auto_policy_cpu(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    names = available_backends("cpu")
    assert names[-1] == "reference" and "chunked" in names
    assert names[0] == ("numba" if HAS_NUMBA else "chunked")
    # without the optional package, the automatic CPU choice falls back to chunked
    monkeypatch.setattr(reg._BACKENDS["numba"], "_available", False)
    assert reg.resolve_backend_name(torch.device("cpu")) == "chunked"
    assert "numba" not in available_backends("cpu")
    assert "numba" in registered_backends()


def test_env_var_auto_means_automatic(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "auto")
    assert reg.resolve_backend_name(torch.device("cpu")) == available_backends("cpu")[0]


def test_unknown_env_var_backend(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "does_not_exist")
    with pytest.raises(ValueError, match="Unknown selective-scan backend 'does_not_exist'"):
        _scan()


def test_use_backend_rejects_unknown_names_early():
    with pytest.raises(ValueError, match="Unknown selective-scan backend"):
        with use_backend("nope"):
            pass


def test_unavailable_backend_names_what_to_install(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(reg._BACKENDS["numba"], "_available", False)
    with pytest.raises(RuntimeError, match=r"'numba' is not available: install numba: pip install \"vision-ssm\[cpu\]"):
        _scan(backend="numba")


def test_missing_probe_module_makes_backend_unavailable():
    spec = BackendSpec(name="ghost", target="x:y", devices=("cpu",), probe=("surely_not_a_module_xyz",),
                       install_hint="pip install ghost")
    register_backend(spec)
    try:
        assert "ghost" not in available_backends("cpu")
        with pytest.raises(RuntimeError, match="pip install ghost"):
            _scan(backend="ghost")
    finally:
        reg._BACKENDS.pop("ghost")


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_is_imported_lazily():
    code = (
        "import sys, torch, vision_ssm\n"
        "assert 'numba' not in sys.modules, 'import vision_ssm imported numba'\n"
        "from vision_ssm.ops import selective_scan\n"
        "x = torch.randn(1, 2, 5); B = torch.randn(1, 1, 5)\n"
        "selective_scan(x, x.abs(), -torch.ones(2, 1), B, B, backend='chunked')\n"
        "assert 'numba' not in sys.modules, 'the chunked backend imported numba'\n"
        "selective_scan(x, x.abs(), -torch.ones(2, 1), B, B, backend='numba')\n"
        "assert 'numba' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unavailable_reason_is_reported(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    spec = BackendSpec(name="ghost2", target="x:y", devices=("cpu",), reason_target="platform:system")
    register_backend(spec)
    try:
        assert spec.unavailable_reason == platform.system()  # the probe's message, verbatim
        with pytest.raises(RuntimeError, match=f"'ghost2' is not available: {platform.system()}$"):
            _scan(backend="ghost2")
    finally:
        reg._BACKENDS.pop("ghost2")


def test_installed_but_unusable_backend_warns_once_in_auto_mode(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    spec = BackendSpec(name="ghost3", target="x:y", devices=("cpu",), priority={"cpu": 10_000},
                       reason_target="platform:system", intent_module="json")
    register_backend(spec)
    try:
        with pytest.warns(RuntimeWarning, match="'ghost3' is installed but cannot run"):
            assert reg.resolve_backend_name(torch.device("cpu")) == available_backends("cpu")[0]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reg.resolve_backend_name(torch.device("cpu"))  # once only
    finally:
        reg._BACKENDS.pop("ghost3")
        reg._WARNED.discard("ghost3")

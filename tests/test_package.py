"""Package-level checks: light import, version, floors rule, CLI."""
import ast
import pathlib
import subprocess
import sys

import vision_ssm

ROOT = pathlib.Path(vision_ssm.__file__).parent
FLOOR = {"ops": 1, "layers": 2, "models": 3, "data": 2, "metrics": 2, "tasks": 4}
# What each subpackage may import from vision_ssm
ALLOWED = {
    "ops": {"ops"},
    "layers": {"ops", "layers"},
    "models": {"ops", "layers", "models"},
    "data": {"data", "ops"},
    "metrics": {"metrics", "ops"},
    "tasks": {"ops", "layers", "models", "data", "metrics", "tasks"},
}


def _vision_ssm_imports(path: pathlib.Path, pkg: str):
    """Yield the vision_ssm subpackage (``ops``, ``layers``...) of every import in ``path``."""
    package = ("vision_ssm",) + path.relative_to(ROOT).parts[:-1]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mods = [base + tuple(node.module.split("."))] if node.module else [
                    base + (a.name,) for a in node.names
                ]
            else:
                mods = [tuple((node.module or "").split("."))]
        elif isinstance(node, ast.Import):
            mods = [tuple(a.name.split(".")) for a in node.names]
        else:
            continue
        for m in mods:
            if len(m) > 1 and m[0] == "vision_ssm":
                yield m[1]


def test_version():
    assert isinstance(vision_ssm.__version__, str) and vision_ssm.__version__.count(".") >= 2


def test_imports_only_go_down_the_floors():
    bad = []
    for pkg, allowed in ALLOWED.items():
        for path in (ROOT / pkg).rglob("*.py"):
            for mod in _vision_ssm_imports(path, pkg):
                if mod in FLOOR and mod not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports vision_ssm.{mod}")
    assert not bad, "imports that go up a floor:\n" + "\n".join(bad)


def test_floor_checker_catches_an_upward_import(tmp_path):
    f = ROOT / "ops" / "_tmp_floor_probe.py"
    f.write_text("from ..models import something\n")
    try:
        found = list(_vision_ssm_imports(f, "ops"))
    finally:
        f.unlink()
    assert "models" in found


def test_import_is_light():
    """``import vision_ssm`` adds no optional heavy package beyond what ``import timm`` itself loads.

    (torchvision, which timm needs, imports torch._dynamo and through it triton; that is not ours.)
    """
    code = (
        "import sys, timm; before=set(sys.modules); import vision_ssm; "
        "new=set(sys.modules)-before; "
        "bad=sorted(m for m in new if m.split('.')[0] in ('triton','mamba_ssm','selective_scan_cuda','hilbert',"
        "'pyzorder','numba','sklearn','skimage','matplotlib') or m.startswith('vision_ssm.ops.triton')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli_info():
    r = subprocess.run([sys.executable, "-m", "vision_ssm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert vision_ssm.__version__ in r.stdout and "reference" in r.stdout

"""Package-level checks: light import, version, floors rule, CLI."""
import ast
import pathlib
import subprocess
import sys

import vision_ssm

ROOT = pathlib.Path(vision_ssm.__file__).parent
FLOOR = {"ops": 1, "layers": 2, "models": 3, "data": 2, "metrics": 2, "viz": 2, "tasks": 4}
# What each subpackage may import from vision_ssm
ALLOWED = {
    "ops": {"ops"},
    "layers": {"ops", "layers"},
    "models": {"ops", "layers", "models"},
    "data": {"data", "ops"},
    "metrics": {"metrics", "ops"},
    "viz": {"viz", "ops"},
    "tasks": {"ops", "layers", "models", "data", "metrics", "viz", "tasks"},
}


def _imported_modules(path: pathlib.Path, top_level_only: bool = False):
    """Yield the dotted names (tuples) of the modules ``path`` imports (relative imports resolved)."""
    package = ("vision_ssm",) + path.relative_to(ROOT).parts[:-1]
    tree = ast.parse(path.read_text())
    for node in (tree.body if top_level_only else ast.walk(tree)):
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
        yield from mods


def _vision_ssm_imports(path: pathlib.Path, pkg: str, depth: int = 1):
    """Yield the vision_ssm subpackage (``ops``, ``layers``...) of every import in ``path``; with
    ``depth=2``, the sub-subpackage (``("ops", "scan")``...)."""
    for m in _imported_modules(path):
        if len(m) > depth and m[0] == "vision_ssm":
            yield m[1] if depth == 1 else m[1 : depth + 1]


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


# Inside ops: the scan API and the geometry are the ground; each backend package stands on them and on
# nothing else (the registry names backends by import path, so the API never imports one).
OPS_BACKENDS = ("chunked", "numba", "triton", "mamba_ssm")
OPS_ALLOWED = {
    "geometry": {"geometry"},
    "scan": {"scan", "geometry"},
    **{b: {b, "scan", "geometry"} for b in OPS_BACKENDS},
}


def test_ops_sub_packages_keep_their_floors():
    subs = {p.name for p in (ROOT / "ops").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subs == set(OPS_ALLOWED), f"ops sub-packages changed: {sorted(subs)}; update OPS_ALLOWED and the docs"
    bad = []
    for sub, allowed in OPS_ALLOWED.items():
        for path in (ROOT / "ops" / sub).rglob("*.py"):
            for mod in _vision_ssm_imports(path, "ops", depth=2):
                if mod[0] == "ops" and len(mod) > 1 and mod[1] in OPS_ALLOWED and mod[1] not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports vision_ssm.{'.'.join(mod)}")
                elif mod[0] == "ops" and len(mod) > 1 and mod[1] not in OPS_ALLOWED:
                    bad.append(f"{path.relative_to(ROOT)} imports vision_ssm.{'.'.join(mod)} (not a sub-package)")
    assert not bad, "ops sub-package imports that break the floor plan:\n" + "\n".join(bad)


def _module_name(path: pathlib.Path) -> tuple[str, ...]:
    parts = ("vision_ssm",) + path.relative_to(ROOT).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def test_no_import_cycles():
    """Module-level imports inside vision_ssm form no cycle (lazy imports inside functions are allowed)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for m in _imported_modules(path, top_level_only=True):
            # ``from pkg import sub`` names a module too: keep the longest prefix that is a module
            while m and m not in modules:
                m = m[:-1]
            if m and m != name and m[0] == "vision_ssm" and not name[: len(m)] == m:
                deps.add(m)
        graph[name] = deps
    cycle = _find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(".".join(m) for m in cycle)


def _find_cycle(graph: dict) -> list:
    """One cycle of ``graph`` (node -> set of nodes) as a list of nodes, or ``[]``."""
    state: dict = {}

    def visit(n, stack):
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d, stack + [d])
                if found:
                    return found
        state[n] = 2
        return []

    for n in sorted(graph):
        if n not in state:
            found = visit(n, [n])
            if found:
                return found
    return []


def test_cycle_finder_finds_the_old_numba_cycle():
    graph = {("scan",): {("ops",)}, ("ops",): {("scan",)}, ("kernels",): set(), ("x",): {("kernels",)}}
    assert _find_cycle(graph) == [("ops",), ("scan",), ("ops",)]
    assert _find_cycle({("a",): {("b",)}, ("b",): set()}) == []


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
        "'pyzorder','numba','sklearn','skimage','matplotlib','causal_conv1d') "
        "or m.startswith('vision_ssm.ops.triton')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli_info():
    r = subprocess.run([sys.executable, "-m", "vision_ssm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert vision_ssm.__version__ in r.stdout and "reference" in r.stdout

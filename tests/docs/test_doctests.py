"""The examples in the package's docstrings run (``doctest`` over every module of ``vision_ssm``)."""
import doctest
import importlib
import pkgutil

import pytest

import vision_ssm

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples() -> list[str]:
    """Names of the vision_ssm modules whose docstrings hold at least one ``>>>`` example."""
    names = []
    for info in pkgutil.walk_packages(vision_ssm.__path__, "vision_ssm."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional accelerator (triton, mamba_ssm) is not installed here
            continue
        if any(t.examples for t in doctest.DocTestFinder().find(module, info.name)):
            names.append(info.name)
    return names


MODULES = modules_with_examples()


def test_examples_exist():
    # the public entry points documented with examples; a refactor must not drop them silently
    for name in ("vision_ssm.ops.scan.api", "vision_ssm.ops.scan.registry", "vision_ssm.ops.geometry.route",
                 "vision_ssm.models.complexity", "vision_ssm.models.published"):
        assert name in MODULES, f"{name} lost its docstring examples"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"


def public_objects():
    """``(module, name, object)`` of the classes and functions vision_ssm defines and lists in an ``__all__``."""
    import inspect

    out = []
    for info in pkgutil.walk_packages(vision_ssm.__path__, "vision_ssm."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            defined_here = getattr(obj, "__module__", "").startswith("vision_ssm")  # not torch's re-exports
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and defined_here:
                out.append((info.name, name, obj))
    return out


def test_every_public_class_and_function_has_a_docstring():
    missing = sorted(f"{m}.{n}" for m, n, obj in public_objects() if not (obj.__doc__ or "").strip())
    assert missing == [], f"public symbols without a docstring: {missing}"

"""mkdocs hook: serve MathJax from the site itself, so the equations render offline too.

The MathJax 3 files come from the ``django-static-mathjax`` package of the ``docs`` extra (plain static
files, Apache-2.0, no Django needed); the hook adds the parts the pages use (``tex-chtml.js``, the TeX
input extensions, the CHTML output fonts, the menu and accessibility components) to the build under
``assets/mathjax/``. ``mkdocs.yml`` loads ``javascripts/mathjax.js`` (the settings) and then
``assets/mathjax/tex-chtml.js``.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DEST = "assets/mathjax"
PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors")


def mathjax_dir() -> Path:
    try:
        import mathjax
    except ImportError as e:
        raise PluginError("the docs need MathJax's files from the 'django-static-mathjax' package: "
                          "pip install -e '.[docs]'") from e
    root = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (root / "tex-chtml.js").exists():
        raise PluginError(f"django-static-mathjax is installed but {root / 'tex-chtml.js'} is missing")
    return root


def on_files(files, config, **kwargs):
    root = mathjax_dir()
    for part in PARTS:
        path = root / part
        for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(root).as_posix()
            files.append(File(rel, str(root), config["site_dir"], config["use_directory_urls"],
                              dest_uri=f"{DEST}/{rel}"))
    return files

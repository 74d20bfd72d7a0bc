"""Every ```python block of the quickstart and tutorial pages runs, in page order, as written."""
import os
import re

import pytest
import torch
from paths import REPO

DOCS = REPO / "docs"
PAGES = [
    "quickstart.md", "tutorials/checkpoints.md", "tutorials/custom_model.md", "tutorials/scan_order.md",
    "layers/vss.md", "layers/hss_lss.md", "layers/mambavision.md",
]


def python_blocks(page: str) -> list[str]:
    """The ```python blocks of a docs page, in order."""
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text(), re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python code blocks"
    monkeypatch.chdir(tmp_path)  # files the tutorials write land in a temporary folder
    torch.manual_seed(0)
    namespace = {"__name__": f"docs_{page.replace('/', '_').removesuffix('.md')}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOCS / page}:block{i}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{page}, python block {i} failed: {type(e).__name__}: {e}\n{code}") from e


def test_every_tutorial_page_is_checked():
    tutorials = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "tutorials").glob("*.md"))
    assert set(tutorials) <= set(PAGES), f"tutorial pages not run by this test: {set(tutorials) - set(PAGES)}"
    assert os.path.exists(DOCS / "quickstart.md")

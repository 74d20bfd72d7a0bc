"""The "Adding a backend" walkthrough of docs/architecture.md runs as written."""
import re

from paths import REPO

from vision_ssm.ops.scan import registry

DOC = REPO / "docs" / "architecture.md"


def test_toy_backend_walkthrough_runs():
    text = DOC.read_text()
    section = text[text.index("## Adding a backend"):text.index("## Adding a block family")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    try:
        exec(compile(code, str(DOC), "exec"), {})
        assert "toy" in registry.registered_backends()
        assert registry.get_backend_spec("toy").is_available()
    finally:
        registry._BACKENDS.pop("toy", None)

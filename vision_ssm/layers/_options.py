"""One option path from a model down to its SSM mixer: ``ssm_cfg`` merging and deprecated keywords.

The rule, used by every block family:

- A **mixer** (:class:`~vision_ssm.layers.SS2D`, :class:`~vision_ssm.layers.MambaVisionMixer`) takes
  plain keyword arguments, named as in mamba-ssm (``d_model``, ``d_state``, ``d_conv``, ``dt_rank``,
  ...) plus ``backend`` (the selective-scan backend handed to the op).
- A **block** (``VSSBlock``, ``HSSBlock``, ``LSSModule``, ``MambaVisionBlock``, ...) takes ``ssm_cfg``,
  a plain ``dict`` of mixer keyword arguments, plus a few explicit overrides (``d_state``, ``scan``,
  ``directions``, ``backend``; ``None`` = not given). The mixer receives
  ``{**block_defaults, **ssm_cfg, **explicit_overrides}`` (see :func:`merge_ssm_cfg`).
- A **model** keeps its upstream constructor names (``ssm_d_state``, ``d_state``, ...; configs and
  checkpoints depend on them), folds them into one ``ssm_cfg`` dict and passes that down, with the
  user's ``ssm_cfg`` and ``backend=`` on top.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["fold_legacy_ssm_kwargs", "merge_ssm_cfg", "pop_deprecated"]


def merge_ssm_cfg(
        ssm_cfg: Mapping[str, Any] | None,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
) -> dict[str, Any]:
    """The mixer keyword arguments of a block: ``defaults`` < ``ssm_cfg`` < the non-``None`` ``overrides``.

    Args:
        ssm_cfg: Mixer keyword arguments given to the block (may be ``None``).
        defaults: The block's own defaults where they differ from the mixer's (e.g. MambaAD's HSS block
            scans ``"hilbert"`` in 8 directions where :class:`~vision_ssm.layers.SS2D` defaults to
            ``"sweep"`` in 4).
        **overrides: Explicit block arguments; ``None`` means "not given" and is skipped.

    Returns:
        A new dict (the inputs are not modified). A default ``directions`` is dropped when the caller's
        ``scan`` carries its own direction count (``"hilbert-4"``, ``("hilbert", 4)``, a ``DirectionSpec`` or
        a ``DirectionSet``), so the count in the scan is used rather than refused as a conflict.
    """
    given = dict(ssm_cfg or {})
    given.update({k: v for k, v in overrides.items() if v is not None})
    cfg = dict(defaults or {})
    if "directions" not in given and _scan_carries_directions(given.get("scan")):
        cfg.pop("directions", None)
    cfg.update(given)
    return cfg


def _scan_carries_directions(scan: Any) -> bool:
    """Whether a ``scan`` option names its own direction count (``'family-K'``, ``(family, K)``, a spec/set)."""
    if isinstance(scan, str):
        return scan.rpartition("-")[2].isdigit()
    return isinstance(scan, tuple) or hasattr(scan, "num_directions") or hasattr(scan, "K")


def pop_deprecated(kwargs: dict[str, Any], renames: Mapping[str, str], owner: str) -> dict[str, Any]:
    """Pop deprecated keyword arguments from ``kwargs``, warn once per name, return them under their new names.

    Args:
        kwargs: The caller's ``**kwargs`` (modified in place: the old names are removed).
        renames: ``{old_name: new_name}``; ``new_name`` may be written ``"ssm_cfg.<key>"`` for an option that
            now lives in ``ssm_cfg`` (the warning says so).
        owner: Class name for the warning text.

    Returns:
        ``{new_name: value}`` for every old name found.
    """
    found = {}
    for old, new in renames.items():
        if old in kwargs:
            where = f"ssm_cfg={{{new[8:]!r}: ...}}" if new.startswith("ssm_cfg.") else f"{new}="
            warnings.warn(f"{owner}({old}=...) is deprecated; use {where}", FutureWarning, stacklevel=3)
            found[new] = kwargs.pop(old)
    return found


def fold_legacy_ssm_kwargs(kwargs: dict[str, Any], owner: str) -> dict[str, Any]:
    """Leftover ``**kwargs`` of a block that used to forward them to its mixer: warn and return them as ``ssm_cfg``.

    Blocks once took mixer options as ``**ss2d_kwargs``; they now take ``ssm_cfg``. The leftovers are
    still honoured (as ``ssm_cfg`` entries, below any explicit override) so existing configs keep working.
    """
    if kwargs:
        warnings.warn(f"{owner}: passing mixer options as keywords ({', '.join(sorted(kwargs))}) is deprecated; "
                      f"put them in ssm_cfg", FutureWarning, stacklevel=3)
    return dict(kwargs)

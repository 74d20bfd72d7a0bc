"""Files of the classification recipe: safetensors weights, the resume state, the CSV log and the curve plot.

Layout of an output folder (written by rank 0 only)::

    last.safetensors        model weights after the last finished epoch
    last_ema.safetensors    EMA weights (when model_ema is on)
    best.safetensors        the weights (model or EMA) with the best val top-1; best.json says which and when
    last_state.pt           optimizer, scheduler, GradScaler, epoch, update count, history, config (for resume)
    log.csv                 one row per epoch
    curves.png              loss and top-1 per epoch
    config.yaml             the resolved config of the run

Every file is written to a temporary name and moved into place, so an interrupted run never leaves a
half-written checkpoint.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "load_finetune_weights",
    "load_weights",
    "plot_curves",
    "save_weights",
    "write_json",
    "write_log_csv",
]


def _atomic(path: Path):
    return path.with_name(path.name + ".tmp")


def save_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Save ``module.state_dict()`` (parameters and buffers, contiguous, on CPU) as safetensors."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = _atomic(path)
    save_file(state, str(tmp))
    os.replace(tmp, path)


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors file written by :func:`save_weights` (strict)."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)), strict=True)


def save_state(state: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file, then move it into place."""
    path = Path(path)
    tmp = _atomic(path)
    torch.save(state, tmp)
    os.replace(tmp, path)


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON atomically (a temporary file, then a rename).

    Args:
        obj: Any JSON-serialisable value.
        path: Destination file; an existing file is replaced only once the new one is complete.
    """
    path = Path(path)
    tmp = _atomic(path)
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def load_finetune_weights(model: torch.nn.Module, path: str | Path, num_classes: int) -> dict:
    """Load a checkpoint into ``model`` and give it a new ``num_classes``-way head when the class count differs.

    The checkpoint's head size is read from its classifier weight (``pretrained_cfg["classifier"]``); the model's
    head is resized to it with ``reset_classifier``, every tensor is loaded strictly, and then
    ``reset_classifier(num_classes)`` puts a freshly initialised head on when the counts differ. Accepts
    ``.safetensors`` and timm/torch checkpoints (``state_dict`` / ``model`` / EMA keys, ``module.`` prefixes).

    Returns:
        ``{"checkpoint_classes": int, "new_head": bool}``.

    Raises:
        FileNotFoundError: for a missing file; KeyError: if the checkpoint lacks the classifier weight;
        RuntimeError: if any other tensor is missing, unexpected or of another shape.
    """
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"finetune checkpoint {str(path)!r} does not exist")
    state = load_state_dict(str(path), weights_only=True)
    clf = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ""
    key = f"{clf}.weight"
    if key not in state:
        raise KeyError(f"finetune checkpoint {str(path)!r} has no classifier weight {key!r} (the model's "
                       f"pretrained_cfg['classifier'] is {clf!r})")
    ckpt_classes = int(state[key].shape[0])
    if ckpt_classes != model.num_classes:
        model.reset_classifier(ckpt_classes)
    model.load_state_dict(state, strict=True)
    new_head = ckpt_classes != num_classes
    if new_head:
        model.reset_classifier(num_classes)
    return {"checkpoint_classes": ckpt_classes, "new_head": new_head}


def write_log_csv(history: list[dict], path: str | Path) -> None:
    """All epochs of ``history`` as a CSV table (columns = union of keys, in first-seen order)."""
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    path = Path(path)
    tmp = _atomic(path)
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)


def plot_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    """Training curves: train/val loss (left) and val top-1 / EMA top-1 (right) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(ep, [r["train_loss"] for r in history], "o-", label="train loss")
    for key, label in (("val_loss", "val loss"),):
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax1.plot(*zip(*pts), "s-", label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    for key, label in (("top1", "val top-1"), ("ema_top1", "EMA val top-1")):
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax2.plot(*zip(*pts), "o-", label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("top-1 (%)")
    if ax2.lines:
        ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)

"""Resumable training state shared by the recipes: ``last.safetensors`` (weights) + ``last_state.pt``.

``last_state.pt`` holds the optimizer, scheduler and AMP ``GradScaler`` state dicts, the last finished
epoch and whatever else the recipe keeps (history, best score). :func:`load_training_state` restores
all of them and returns the file's contents, so a recipe continues with ``state["epoch"] + 1``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_training_state", "save_training_state"]


def _save_model(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(path))


def _load_model(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_model

    load_model(model, str(path), strict=True)


def save_training_state(out: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                        scaler: torch.amp.GradScaler, epoch: int,
                        save_weights: Callable[[torch.nn.Module, Path], None] | None = None, **extra: Any) -> None:
    """Write ``out/last.safetensors`` and ``out/last_state.pt`` after ``epoch`` (0-based) finished.

    Args:
        out: The run's output folder.
        model: Its weights go to ``last.safetensors``.
        optimizer: ``torch.optim.Optimizer``.
        scheduler: LR scheduler (anything with ``state_dict``).
        scaler: ``torch.amp.GradScaler``.
        epoch: The epoch just finished.
        save_weights: ``(model, path)`` writer of the weights (default: safetensors' ``save_model``).
        **extra: More entries of ``last_state.pt`` (history, best score, ...), loadable with
            ``weights_only=True`` (tensors, numbers, strings, lists and dicts of them).
    """
    out = Path(out)
    (save_weights or _save_model)(model, out / "last.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch, **extra}, out / "last_state.pt")


def load_training_state(out: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                        scaler: torch.amp.GradScaler,
                        load_weights: Callable[[torch.nn.Module, Path], None] | None = None) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into ``model``, ``optimizer``, ``scheduler``, ``scaler``.

    Returns:
        The contents of ``last_state.pt`` (``epoch`` and the recipe's extra entries).

    Raises:
        FileNotFoundError: ``out`` has no ``last_state.pt`` (nothing to resume).
    """
    out = Path(out)
    state_path = out / "last_state.pt"
    if not state_path.is_file():
        raise FileNotFoundError(f"resume=True / --resume: no {state_path} (run once without it first)")
    (load_weights or _load_model)(model, out / "last.safetensors")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return state

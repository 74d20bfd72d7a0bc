"""Argument and input checks shared by every block and model: one place, one message style.

Every message names the owner and the argument, says what it got and what it expects, e.g.
``SS2D: expected x as (B, H, W, C) channels-last input with C=96, got shape (2, 96, 14, 14); did you
pass (B, C, H, W)? ...``.

The checks are plain Python on static shapes, so ``torch.compile`` and ``torch.export`` trace through
them (they only compare sizes that are fixed for a model, such as channel counts), and they are skipped
under ``torch.jit.is_scripting()`` and ``torch.fx`` symbolic tracing, where tensors are proxies.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._fx import is_fx_tracing

__all__ = [
    "LAYOUTS",
    "check_choice",
    "check_image",
    "check_input",
    "check_int",
    "check_ints",
    "check_number",
    "check_rate",
    "skip_checks",
]

#: Layout name -> how messages describe it.
LAYOUTS = {
    "NHWC": "(B, H, W, C) channels-last",
    "NCHW": "(B, C, H, W) channels-first",
    "NLC": "(B, L, C) token",
}


def skip_checks(x: Any = None) -> bool:
    """True while scripting or FX-tracing (proxies carry no shapes to check)."""
    if torch.jit.is_scripting():
        return True
    return is_fx_tracing() or isinstance(x, torch.fx.Proxy)


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, torch.SymInt)) and not isinstance(value, bool)


def check_int(value: Any, name: str, owner: str, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum`` (``bool``, ``float`` and ``str`` are refused, not converted).

    Raises:
        TypeError: not an integer.
        ValueError: below ``minimum``.
    """
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_ints(values: Any, name: str, owner: str, minimum: int = 1, length: int | None = None) -> list[int]:
    """A non-empty sequence of ``int >= minimum`` (of ``length`` entries when given)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not len(values):
        raise TypeError(f"{owner}: {name} must be a non-empty sequence of ints, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{owner}: {name} needs {length} entries, got {len(values)}: {list(values)}")
    return [check_int(v, f"{name}[{i}]", owner, minimum) for i, v in enumerate(values)]


def check_number(value: Any, name: str, owner: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a real number in the interval ``low .. high`` (open ends when ``*_open``).

    Raises:
        TypeError: not a real number (``bool`` and ``str`` are refused).
        ValueError: outside the interval (NaN included).
    """
    if not isinstance(value, (numbers.Real, torch.SymFloat, torch.SymInt)) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = v != v or (low is not None and (v <= low if low_open else v < low)) or (
        high is not None and (v >= high if high_open else v > high))
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        rng = f"in {lo}, {hi}" if low is not None and high is not None else (
            f"{'>' if low_open else '>='} {low:g}" if low is not None else f"{'<' if high_open else '<='} {high:g}")
        raise ValueError(f"{owner}: {name} must be {rng}, got {value!r}")
    return v


def check_rate(value: Any, name: str, owner: str) -> float:
    """A dropout / drop-path probability in ``[0, 1)``."""
    return check_number(value, name, owner, 0.0, 1.0, high_open=True)


def check_choice(value: Any, name: str, owner: str, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {tuple(choices)}, got {value!r}")
    return value


def _layout_hint(shape: tuple[int, ...], layout: str, channels: int | None) -> str:
    if channels is None or len(shape) not in (3, 4):
        return ""
    if layout == "NHWC" and len(shape) == 4 and shape[1] == channels:
        return ("; did you pass (B, C, H, W)? Permute with x.permute(0, 2, 3, 1) or build the block with "
                "channels_first=True")
    if layout == "NCHW" and len(shape) == 4 and shape[-1] == channels:
        return "; did you pass (B, H, W, C)? Permute with x.permute(0, 3, 1, 2)"
    if layout == "NCHW" and len(shape) == 3 and shape[0] == channels:
        return "; a single image? Add the batch dim with x.unsqueeze(0)"
    if layout == "NLC" and len(shape) == 4 and shape[1] == channels:
        return "; a (B, C, H, W) map? Flatten it to tokens with x.flatten(2).transpose(1, 2)"
    if layout == "NLC" and len(shape) == 4 and shape[-1] == channels:
        return "; a (B, H, W, C) map? Flatten it to tokens with x.flatten(1, 2)"
    if layout == "NLC" and len(shape) == 3 and shape[1] == channels:
        return "; did you pass (B, C, L)? Transpose with x.transpose(1, 2)"
    return ""


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def check_input(
        x: Any,
        owner: str,
        layout: str,
        channels: int | None = None,
        weight: Tensor | None = None,
        name: str = "x",
        min_size: int = 1,
) -> None:
    """Check a block's input tensor: type, rank, layout, channel count, dtype and device.

    Args:
        x: The input.
        owner: Class name for the message.
        layout: ``"NHWC"``, ``"NCHW"`` or ``"NLC"`` (see :data:`LAYOUTS`).
        channels: Expected channel count ``C`` (``None``: any).
        weight: A weight of the block; the input must share its device, and its dtype unless autocast is on.
        name: Argument name for the message.
        min_size: Smallest spatial size (``H``, ``W``; ``L`` for tokens).

    Raises:
        TypeError: ``x`` is not a tensor, or not floating point.
        ValueError: wrong rank, layout, channel count or size; or a dtype/device other than the weights'.
    """
    if skip_checks(x):
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected {name} to be a torch.Tensor {LAYOUTS[layout]}, got {type(x).__name__}")
    rank = 3 if layout == "NLC" else 4
    shape = tuple(x.shape)
    c_axis = 1 if layout == "NCHW" else -1
    if x.dim() != rank or (channels is not None and shape[c_axis] != channels):
        want = f" with C={channels}" if channels is not None else ""
        raise ValueError(f"{owner}: expected {name} as {LAYOUTS[layout]} input{want}, got shape {shape}"
                         f"{_layout_hint(shape, layout, channels)}")
    spatial = shape[1:2] if layout == "NLC" else (shape[2:] if layout == "NCHW" else shape[1:3])
    if any(s < min_size for s in spatial):
        what = "L" if layout == "NLC" else "H and W"
        raise ValueError(f"{owner}: {name} needs {what} >= {min_size}, got shape {shape} ({LAYOUTS[layout]})")
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{owner}: expected {name} to be a floating-point tensor, got {x.dtype}; convert it with "
                        f"x.float() (8-bit images: x.float() / 255)")
    if weight is not None:
        if x.device != weight.device:
            raise ValueError(f"{owner}: {name} is on {x.device} but the weights are on {weight.device}; move the "
                             f"input (x.to('{weight.device}')) or the module (module.to('{x.device}'))")
        if x.dtype != weight.dtype and weight.is_floating_point() and not _autocast_on(x.device.type):
            raise ValueError(f"{owner}: {name} is {x.dtype} but the weights are {weight.dtype}; cast the input "
                             f"(x.to({weight.dtype})) or the module (module.to({x.dtype})), or run under "
                             f"torch.autocast")


def check_image(x: Any, owner: str, in_chans: int, weight: Tensor | None = None, min_size: int = 1) -> None:
    """A model's image batch: ``(B, in_chans, H, W)`` NCHW (see :func:`check_input`)."""
    check_input(x, owner, "NCHW", in_chans, weight, name="images", min_size=min_size)

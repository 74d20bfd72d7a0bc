"""Parameters and multiply-accumulates of a model, counted on the ``meta`` device (no memory, no compute).

The model zoo of the documentation is generated from these counts at build time, so they must be
cheap: :func:`model_complexity` builds the model under ``torch.device("meta")`` (parameters have a
shape but no storage) and runs one forward pass of meta tensors under
:class:`torch.utils.flop_counter.FlopCounterMode`. Nothing is allocated and nothing is computed, so
even the 740M-parameter MambaVision-L3 is counted in about a second on a CPU.

What is counted:

- **Dense operators** (convolutions, matrix products, attention): PyTorch's FLOP formulas, halved to
  multiply-accumulates (one MAC = one multiply + one add).
- **The selective scan**, which no PyTorch formula covers: ``9·B·L·D·N`` MACs per call, plus ``B·D·L``
  for the ``D`` skip and ``B·D·L`` for the ``z`` gate: the formula VMamba and MambaVision count their
  published FLOPs with (state-spaces/mamba issue #110). While counting, the scan runs on a ``"meta"``
  backend registered here that only returns tensors of the right shape.
- Element-wise operators (activations, norms, softmax) count zero, as in fvcore and timm's tables.

Example:
    >>> from vision_ssm.models.complexity import model_complexity
    >>> c = model_complexity("test_vmamba")
    >>> c.input_size, c.params > 0, c.macs > c.scan_macs > 0
    ((3, 128, 128), True, True)
"""
from __future__ import annotations

import contextvars
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..ops import BackendSpec, register_backend, use_backend

__all__ = ["META_BACKEND", "Complexity", "model_complexity", "scan_macs"]

META_BACKEND = "meta"
_scan_tally: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("vision_ssm_scan_tally", default=None)


def scan_macs(batch: int, d_inner: int, length: int, d_state: int, has_D: bool, has_z: bool) -> int:
    """Multiply-accumulates of one selective scan (the mamba#110 formula).

    Args:
        batch: ``B``.
        d_inner: ``D``, the scanned channels (all directions together for a routed scan).
        length: ``L``, the sequence length.
        d_state: ``N``, the state size.
        has_D: Whether the ``D`` skip ``y += D·u`` is applied.
        has_z: Whether the ``z`` gate ``y *= silu(z)`` is applied.

    Returns:
        ``9·B·L·D·N + (B·D·L if has_D) + (B·D·L if has_z)``.
    """
    n = 9 * batch * length * d_inner * d_state
    return n + batch * d_inner * length * (int(has_D) + int(has_z))


def _selective_scan_meta(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """ScanFn on the ``meta`` device: the output shapes, and the scan's MACs added to the open tally."""
    tally = _scan_tally.get()
    if tally is not None:
        tally[0] += scan_macs(u.shape[0], u.shape[1], u.shape[2], A.shape[1], D is not None, z is not None)
    y = torch.empty_like(u)
    if return_last_state:
        return y, u.new_empty(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)
    return y


def _register_meta_backend() -> None:
    sys.modules.setdefault(__name__, sys.modules[__name__])
    register_backend(BackendSpec(
        name=META_BACKEND,
        target=f"{__name__}:_selective_scan_meta",
        devices=("meta",),
        priority={"meta": 0},
        install_hint="built in (shapes only, for counting)",
        pure_torch=True,
    ))


@dataclass(frozen=True)
class Complexity:
    """Size and cost of one model at one input size.

    Attributes:
        params: Number of parameters.
        macs: Multiply-accumulates of one forward pass of batch 1, the selective scans included.
        scan_macs: The part of :attr:`macs` spent in selective scans.
        input_size: ``(C, H, W)`` of the input counted.
    """

    params: int
    macs: int
    scan_macs: int
    input_size: tuple[int, ...]

    @property
    def gmacs(self) -> float:
        """:attr:`macs` in units of 10⁹."""
        return self.macs / 1e9


def _meta_inputs(model: nn.Module, input_size: Sequence[int]) -> tuple[Tensor, ...]:
    """Batch-1 meta inputs for ``model.forward``: one image, or two for the two-modality models."""
    x = torch.empty(1, *input_size, device="meta")
    aux = getattr(model, "aux_chans", None) or getattr(model, "ir_chans", None)
    if aux is not None:
        return x, torch.empty(1, int(aux), *input_size[1:], device="meta")
    return (x,)


def model_complexity(
    model: str | nn.Module,
    input_size: Sequence[int] | None = None,
    inputs: Sequence[Tensor] | None = None,
    **kwargs: Any,
) -> Complexity:
    """Count the parameters and MACs of a model without allocating it.

    Args:
        model: A timm model name (built on the ``meta`` device with ``kwargs``) or a module already on
            the ``meta`` device.
        input_size: ``(C, H, W)``; default: the model's ``pretrained_cfg["input_size"]``.
        inputs: Meta tensors to call ``forward`` with, batch 1 (default: one ``(1, C, H, W)`` image; two
            for models with ``aux_chans`` / ``ir_chans``, the second with that many channels).
        **kwargs: Passed to :func:`timm.create_model` when ``model`` is a name.

    Returns:
        The :class:`Complexity` at that input size.

    Raises:
        ValueError: ``model`` is a module with parameters that are not on the ``meta`` device, or no
            input size is given and the model has no ``pretrained_cfg``.
    """
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(model, str):
        with torch.device("meta"):
            model = timm.create_model(model, **kwargs)
    elif any(p.device.type != "meta" for p in model.parameters()):
        raise ValueError("model_complexity: model must be a name or a module on the 'meta' device "
                         "(build it under `with torch.device('meta'):`), got a module with real parameters")
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "input_size" not in cfg:
            raise ValueError("model_complexity: input_size is required, the model has no pretrained_cfg['input_size']")
        input_size = cfg["input_size"]
    input_size = tuple(int(s) for s in input_size)
    if inputs is None:
        inputs = _meta_inputs(model, input_size)
    _register_meta_backend()
    model.eval()
    tally = [0]
    token = _scan_tally.set(tally)
    try:
        with use_backend(META_BACKEND), FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*inputs)
    finally:
        _scan_tally.reset(token)
    params = sum(p.numel() for p in model.parameters())
    dense = counter.get_total_flops() // 2
    return Complexity(params=params, macs=dense + tally[0], scan_macs=tally[0], input_size=input_size)

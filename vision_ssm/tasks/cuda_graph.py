"""A model's training forward and backward replayed from CUDA graphs, without ``torch.compile``.

An eager training step of a Mamba vision model launches well over a thousand small kernels, and on a fast GPU
the Python that launches them, not the GPU, sets the pace. :class:`CudaGraphForward` captures the model's
forward and its backward once (``torch.cuda.make_graphed_callables``) and afterwards replays them: one launch
each, whatever the number of kernels inside. The loss, ``backward()`` into the parameters' ``.grad``, gradient
clipping, the optimizer, a ``GradScaler`` and EMA stay ordinary eager code around it.

The capture fixes what a graph cannot change:

- the input's shape, dtype, device and strides (the first batch's): another input raises ``ValueError``
  instead of being broadcast into the captured buffer;
- the autocast dtype (autocast is active during capture with its weight-cast cache off, as capture needs);
- train mode: the graphs hold the training forward; :class:`CudaGraphForward` refuses to run once the model is
  switched to eval mode. The model itself is not modified: ``model(x)`` still runs eagerly (evaluation loops
  need no change), and copies of it (an EMA, ``copy.deepcopy``) are plain models.

The captured kernels read and write the model's parameters and buffers in place, so optimizer updates,
``load_state_dict`` and EMA copies are seen by the next replay; assigning *new* tensors to parameters or buffers
(``model.to(other_device)``, ``param.data = ...``) is not. The warm-up runs of the capture update BatchNorm running
statistics; they are restored afterwards, so capturing leaves the model's state as it was.

Not supported, each with a clear error: inputs on the CPU, models with hooks (DistributedDataParallel
registers them), gradient checkpointing (it re-runs the forward inside the backward), and inputs that need a
gradient.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

__all__ = ["CudaGraphForward", "ensure_grads"]


def ensure_grads(params: list[nn.Parameter]) -> None:
    """Give every parameter without a ``.grad`` a zero one (one grouped zero-fill).

    A graphed backward returns its gradients in the graph's fixed buffers. Autograd installs such a buffer as a
    parameter's ``.grad`` when that is ``None``, and the next replay then writes into it: gradient
    accumulation would lose the first gradient, and ``zero_grad(set_to_none=False)`` would double every later
    one. With a ``.grad`` in place, autograd adds the graph's gradient into it instead.

    Example:
        >>> import torch
        >>> from vision_ssm.tasks.cuda_graph import ensure_grads
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> ensure_grads([w])
        >>> w.grad
        tensor([0., 0., 0.])
    """
    missing = [p for p in params if p.grad is None]
    if not missing:
        return
    zeros = [torch.empty_like(p) for p in missing]
    torch._foreach_zero_(zeros)
    for p, z in zip(missing, zeros):
        p.grad = z


class _Forward(nn.Module):
    """The module handed to ``make_graphed_callables`` (which replaces its ``forward``), so that the user's
    model keeps its own."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class CudaGraphForward:
    """Callable that runs ``model``'s training forward (and, through autograd, its backward) from CUDA graphs.

    The graphs are captured at the first call, from that call's input; every later call must pass an input of
    the same shape, dtype, device and strides.

    Args:
        model: The model on a CUDA device, in train mode at the first call. Its ``forward`` takes one tensor.
        amp_dtype: Autocast dtype of the training step (``torch.bfloat16``, ``torch.float16``), or ``None``
            for fp32.
        warmup: Forward and backward runs before the capture (cuDNN / Triton autotuning, allocator); they do
            not touch ``.grad``, and the buffers they update are restored.

    Example:
        >>> import torch
        >>> from vision_ssm.tasks.cuda_graph import CudaGraphForward
        >>> CudaGraphForward(torch.nn.Linear(4, 2))(torch.randn(8, 4))  # graphs are CUDA-only
        Traceback (most recent call last):
            ...
        ValueError: CudaGraphForward: CUDA graphs need a CUDA input, got one on cpu

        On a GPU (``model``, ``loader``, ``criterion``, ``optimizer`` as in any training loop):

        >>> graphed = CudaGraphForward(model, torch.bfloat16)          # doctest: +SKIP
        >>> for x, y in loader:                                       # doctest: +SKIP
        ...     with torch.autocast("cuda", dtype=torch.bfloat16):
        ...         loss = criterion(graphed(x), y)                   # x: (B, C, H, W), fixed B, H, W
        ...     loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)
    """

    def __init__(self, model: nn.Module, amp_dtype: torch.dtype | None = None, warmup: int = 3) -> None:
        if amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"CudaGraphForward: amp_dtype must be None, torch.bfloat16 or torch.float16, got "
                             f"{amp_dtype}")
        if warmup < 1:
            raise ValueError(f"CudaGraphForward: warmup must be >= 1, got {warmup}")
        self.model = model
        self.amp_dtype = amp_dtype
        self.warmup = warmup
        self._graphed = None
        self._spec: tuple | None = None
        self._params: list[nn.Parameter] = []

    @property
    def captured(self) -> bool:
        """Whether the graphs have been captured (at the first call)."""
        return self._graphed is not None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype, cache_enabled=False)

    @staticmethod
    def _spec_of(x: Tensor) -> tuple:
        return tuple(x.shape), x.dtype, x.device, x.stride()

    def _check_model(self, x: Tensor) -> None:
        if x.device.type != "cuda":
            raise ValueError(f"CudaGraphForward: CUDA graphs need a CUDA input, got one on {x.device}")
        if not self.model.training:
            raise ValueError("CudaGraphForward: capture a model in train mode (call model.train() first)")
        devices = {p.device for p in self.model.parameters()}
        if devices != {x.device}:
            raise ValueError(f"CudaGraphForward: the model's parameters are on {sorted(map(str, devices))}, the "
                             f"input on {x.device}")
        for name, m in self.model.named_modules():
            if getattr(m, "grad_checkpointing", False):
                raise ValueError(f"CudaGraphForward: gradient checkpointing is on ({name or 'model'}); it re-runs "
                                 "the forward inside the backward, which a captured graph cannot. Turn it off.")
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
                raise ValueError(f"CudaGraphForward: module {name or 'model'} has hooks registered; graphs cannot "
                                 "run them (DistributedDataParallel registers hooks: graphs are single-process)")

    def _capture(self, x: Tensor) -> None:
        self._check_model(x)
        if self.amp_dtype is None and torch.is_autocast_enabled("cuda"):
            raise ValueError("CudaGraphForward: called under torch.autocast but built with amp_dtype=None; pass the "
                             "autocast dtype (CudaGraphForward(model, torch.bfloat16)) so the capture uses it")
        saved = {n: b.clone() for n, b in self.model.named_buffers()}
        with self._autocast():
            self._graphed = torch.cuda.make_graphed_callables(_Forward(self.model).train(), (x,),
                                                              num_warmup_iters=self.warmup)
        with torch.no_grad():
            for n, b in self.model.named_buffers():
                b.copy_(saved[n])
        self._spec = self._spec_of(x)
        self._params = [p for p in self.model.parameters() if p.requires_grad]

    def __call__(self, x: Tensor) -> Tensor:
        """Forward ``x`` (``(B, C, H, W)`` or whatever the model takes, as at capture) through the graphs.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` differs in shape, dtype, device or strides from the captured input, requires a
                gradient, or the model is in eval mode after the capture.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"CudaGraphForward: the input must be a tensor, got {type(x).__name__}")
        if x.requires_grad:  # the captured backward computes no input gradient
            raise ValueError("CudaGraphForward: the input must not require a gradient")
        if self._graphed is None:
            self._capture(x)
        elif self._spec_of(x) != self._spec:
            shape, dtype, device, stride = self._spec
            raise ValueError(f"CudaGraphForward: captured for input {shape} {dtype} on {device} with strides "
                             f"{stride}, got {tuple(x.shape)} {x.dtype} on {x.device} with strides {x.stride()}; "
                             "drop the last incomplete batch (drop_last=True) or capture another instance")
        if not self.model.training:
            raise ValueError("CudaGraphForward: the model is in eval mode; the graphs hold the training forward. "
                             "Call model(x) for eval, CudaGraphForward for training steps.")
        ensure_grads(self._params)
        # the graph's output buffer is overwritten by the next replay: hand out a copy
        return self._graphed(x).clone()

"""Whether a call is being traced by ``torch.compile`` / ``torch.export`` rather than run eagerly."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def under_tracing(x: Tensor) -> bool:
    """True under ``torch.compile`` or ``torch.export`` (strict, or non-strict: then ``x`` is a fake /
    functional tensor subclass). Backends whose kernels need real data pointers (numba, Triton)
    then call their ``vision_ssm::`` custom ops, which the tracer treats as opaque."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or type(x) not in (Tensor, nn.Parameter)

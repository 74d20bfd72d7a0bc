"""``is_fx_tracing()``: whether ``torch.fx`` symbolic tracing is running (where tensors are proxies
whose layout cannot steer Python control flow); ``torch.export`` / ``torch.compile`` see real
layouts and are not included."""
from __future__ import annotations

try:
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as is_fx_tracing
except ImportError:  # older torch
    try:
        from torch.fx._symbolic_trace import is_fx_tracing
    except ImportError:
        def is_fx_tracing() -> bool:
            return False

__all__ = ["is_fx_tracing"]

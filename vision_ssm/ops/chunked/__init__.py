"""The ``chunked`` selective-scan backend: pure PyTorch, chunk-parallel, memory-saving backward.

:mod:`.scan` holds the entry point registered with the backend registry (and the chunked core).
"""
from .scan import selective_scan_chunked

__all__ = ["selective_scan_chunked"]

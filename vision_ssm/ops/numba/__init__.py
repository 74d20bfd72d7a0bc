"""The ``numba`` selective-scan backend (CPU): compiled loops with a hand-written, deterministic backward.

Layout (as every backend package): :mod:`.scan` holds the entry point registered with the backend
registry; :mod:`.core` the forward/backward drivers and the autograd function; :mod:`.kernels` the
numba kernels (imports numba); :mod:`.custom_ops` the ``torch.library`` ops used under
``torch.compile`` / ``torch.export``. Importing this package imports numba.
"""
from .scan import selective_scan_numba

__all__ = ["selective_scan_numba"]

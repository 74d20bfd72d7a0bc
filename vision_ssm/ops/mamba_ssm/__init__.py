"""The ``mamba_ssm`` selective-scan backend: mamba-ssm's compiled ``selective_scan_cuda`` kernel.

:mod:`.scan` holds the entry point registered with the backend registry and the probe that tells
whether the installed mamba-ssm built its Mamba-1 scan extension. Importing this package imports
nothing optional; the extension is imported when the backend runs.
"""
from .scan import selective_scan_mamba_ssm

__all__ = ["selective_scan_mamba_ssm"]

"""Triton GPU backend: selective-scan and fused SS2D kernels (imports triton; loaded lazily).

Nothing in :mod:`vision_ssm` imports this package eagerly: the backend registry names
``vision_ssm.ops.triton:selective_scan_triton`` and resolves it on first use.
Importing it registers the ``vision_ssm::`` custom ops (:mod:`.custom_ops`) that
``torch.compile`` and ``torch.export`` see in place of the kernels.
"""
from . import custom_ops  # noqa: F401  (registers the vision_ssm:: ops used under torch.compile)
from .scan import selective_scan_triton, ss2d_scan_triton

__all__ = ["selective_scan_triton", "ss2d_scan_triton"]

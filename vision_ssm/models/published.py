"""The numbers the original authors published for the models this library reproduces.

One small table, read by the model zoo of the documentation (generated from the timm registry at build
time) so that the page cannot drift from the code. A model appears here only when it *is* the
published architecture (same configuration, official weights loadable); re-implementations on other
encoders or backbones (``mambaad_efficientnet_lite*``, ``fusion_mamba_cs3darknet_*``) and the
``test_*`` models have no entry, and MambaAlign published no numbers.

Sources: VMamba README and ``assets/performance.md`` (ImageNet-1K, 224²); MambaVision README
(ImageNet-1K top-1, 21K-pretrained models evaluated on 1K at their own resolution); MambaAD README
(multi-class MVTec-AD, mAD = mean of ADer's seven metrics).

Example:
    >>> from vision_ssm.models.published import published_result
    >>> r = published_result("vmamba_tiny_s1l8")
    >>> r.metric, r.value
    ('ImageNet-1K top-1 (%)', 82.6)
    >>> published_result("test_vmamba") is None
    True
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLISHED_RESULTS", "PublishedResult", "published_result"]


@dataclass(frozen=True)
class PublishedResult:
    """One published number of one model.

    Attributes:
        metric: What was measured, with the dataset and the unit.
        value: The published value.
        source: Where it was published.
    """

    metric: str
    value: float
    source: str


_IN1K = "ImageNet-1K top-1 (%)"
_VMAMBA = "VMamba README / assets/performance.md"
_MAMBAVISION = "MambaVision README"

PUBLISHED_RESULTS: dict[str, PublishedResult] = {
    "vmamba_tiny": PublishedResult(_IN1K, 82.2, _VMAMBA),
    "vmamba_small": PublishedResult(_IN1K, 83.5, _VMAMBA),
    "vmamba_base": PublishedResult(_IN1K, 83.7, _VMAMBA),
    "vmamba_tiny_s2l5": PublishedResult(_IN1K, 82.5, _VMAMBA),
    "vmamba_small_s2l15": PublishedResult(_IN1K, 83.6, _VMAMBA),
    "vmamba_base_s2l15": PublishedResult(_IN1K, 83.9, _VMAMBA),
    "vmamba_tiny_s1l8": PublishedResult(_IN1K, 82.6, _VMAMBA),
    "vmamba_small_s1l20": PublishedResult(_IN1K, 83.3, _VMAMBA),
    "vmamba_base_s1l20": PublishedResult(_IN1K, 83.8, _VMAMBA),
    "mambavision_tiny": PublishedResult(_IN1K, 82.3, _MAMBAVISION),
    "mambavision_tiny2": PublishedResult(_IN1K, 82.7, _MAMBAVISION),
    "mambavision_small": PublishedResult(_IN1K, 83.3, _MAMBAVISION),
    "mambavision_base": PublishedResult(_IN1K, 84.2, _MAMBAVISION),
    "mambavision_large": PublishedResult(_IN1K, 85.0, _MAMBAVISION),
    "mambavision_large2": PublishedResult(_IN1K, 85.3, _MAMBAVISION),
    "mambavision_base_21k": PublishedResult(_IN1K, 84.9, _MAMBAVISION),
    "mambavision_large_21k": PublishedResult(_IN1K, 86.1, _MAMBAVISION),
    "mambavision_large2_512_21k": PublishedResult(_IN1K, 87.3, _MAMBAVISION),
    "mambavision_large3_256_21k": PublishedResult(_IN1K, 87.3, _MAMBAVISION),
    "mambavision_large3_512_21k": PublishedResult(_IN1K, 88.1, _MAMBAVISION),
    "mambaad_resnet34": PublishedResult("MVTec-AD multi-class mAD (%)", 86.0, "MambaAD README and paper"),
}


def published_result(name: str) -> PublishedResult | None:
    """The published number of a registered model, or ``None`` when its authors published none for it.

    Args:
        name: A timm model name (``"vmamba_tiny_s1l8"``); a ``.tag`` suffix is ignored.
    """
    return PUBLISHED_RESULTS.get(name.split(".")[0])

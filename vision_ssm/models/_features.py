"""Feature-extraction helpers shared by the model families."""
from __future__ import annotations

# timm has it since 1.0.3 (below our floor) but does not export it publicly
from timm.models._features import feature_take_indices
from torch import Tensor

__all__ = ["check_output_stride", "feature_take_indices", "to_output_fmt"]


def check_output_stride(output_stride: int | None, owner: str, num_stages: int = 4) -> None:
    """timm's ``output_stride`` argument for a model without dilated stages: only ``32`` (or ``None``) is valid.

    timm passes ``output_stride`` to the model constructor (``create_model(..., features_only=True,
    output_stride=16)``); models that cannot dilate their last stages refuse other values, as timm's own
    (``'only output_stride==32 is valid, dilation not supported'``).

    Raises:
        ValueError: any other value, with the feature indices that give the stride asked for.
    """
    if output_stride is None or output_stride == 32:
        return
    hint = ""
    if output_stride in (8, 16):
        last = {16: num_stages - 2, 8: num_stages - 3}[output_stride]
        hint = (f"; for stride-{output_stride} features take out_indices={tuple(range(last + 1))} "
                f"(stage {last} has reduction {output_stride})")
    raise ValueError(f"{owner}: only output_stride=32 is valid, got output_stride={output_stride!r} "
                     f"(dilation is not supported){hint}")


def to_output_fmt(x: Tensor, fmt: str, output_fmt: str) -> Tensor:
    """A 4-D map in layout ``fmt`` (``'NCHW'``/``'NHWC'``) returned in ``output_fmt``."""
    if fmt == output_fmt:
        return x
    return x.permute(0, 2, 3, 1) if output_fmt == "NHWC" else x.permute(0, 3, 1, 2)

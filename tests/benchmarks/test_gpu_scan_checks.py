"""``gpu_scan``'s check that the official route computes the same work, with stand-in route functions."""
from __future__ import annotations

import pytest
import torch

from benchmarks.gpu_scan import check_official_route
from vision_ssm.ops import get_directions


def _cross_scan(x, swap=False):
    """Four sweep copies of ``(B, D, H, W)``: row-major, column-major, and both reversed."""
    rows, cols = x.flatten(2), x.transpose(2, 3).flatten(2)
    order = [rows, cols, rows.flip(-1), cols.flip(-1)]
    if swap:
        order[1], order[2] = order[2], order[1]
    return torch.stack(order, 1)


def _cross_merge(y):
    """Sum of ``(B, 4, D, H, W)`` copies back in row-major pixel order."""
    B, K, D, H, W = y.shape
    y = y.flatten(3)
    cols = (y[:, 1] + y[:, 3].flip(-1)).view(B, D, W, H).transpose(2, 3).flatten(2)
    return y[:, 0] + y[:, 2].flip(-1) + cols


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_accepts_a_route_that_computes_the_sweep_directions(dtype):
    Bt, Dm, H, W = 2, 3, 4, 5
    dirs = get_directions("sweep", H, W, 4, "cpu")
    x = torch.randn(Bt, Dm, H * W, dtype=dtype)
    y = torch.randn(Bt, 4, Dm, H * W, dtype=dtype)
    check_official_route(_cross_scan, _cross_merge, dirs, x, y)


def test_rejects_another_direction_order_and_another_merge():
    Bt, Dm, H, W = 2, 3, 4, 5
    dirs = get_directions("sweep", H, W, 4, "cpu")
    x, y = torch.randn(Bt, Dm, H * W), torch.randn(Bt, 4, Dm, H * W)
    with pytest.raises(RuntimeError, match="same work"):
        check_official_route(lambda t: _cross_scan(t, swap=True), _cross_merge, dirs, x, y)
    with pytest.raises(RuntimeError, match="same work"):
        check_official_route(_cross_scan, lambda t: _cross_merge(t.transpose(3, 4)), dirs, x, y)

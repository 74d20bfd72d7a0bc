"""Clear errors of the scan-geometry functions (issue #23, item 1): grid sizes and direction counts of the wrong type
are refused instead of truncated (``scan_order('zorder', 2.5, 3)`` used to return 6 indices), and a direction set
that cannot be built says why where it is configured."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vision_ssm.ops import (
    DirectionSet,
    DirectionSpec,
    canonical_family,
    get_directions,
    resolve_directions,
    scan_directions,
    scan_order,
)


@pytest.mark.parametrize("H, W, message", [
    (2.5, 3, r"scan_order: grid size H must be an int >= 1, got 2.5 \(float\)"),
    (2, "3", r"scan_order: grid size W must be an int >= 1, got '3' \(str\)"),
    (True, 3, r"scan_order: grid size H must be an int >= 1, got True \(bool\)"),
    (0, 3, r"scan_order: grid size H must be an int >= 1, got 0"),
])
def test_scan_order_grid_size(H, W, message):
    with pytest.raises((TypeError, ValueError), match=message):
        scan_order("zorder", H, W)


def test_integer_like_sizes_still_work():
    assert torch.equal(scan_order("hilbert", np.int64(4), 4), scan_order("hilbert", 4, 4))


def test_get_directions_arguments():
    with pytest.raises(TypeError, match=r"get_directions: grid size H must be an int >= 1, got 2.5 \(float\)"):
        get_directions("zorder", 2.5, 3, 4)
    with pytest.raises(TypeError, match=r"get_directions: num_directions must be an int \(1, 2, 4 or 8; quadsnake: "
                                        r"1, 2 or 4\), got '4' \(str\)"):
        get_directions("zorder", 2, 3, "4")
    with pytest.raises(ValueError, match=r"scan family 'zorder' supports num_directions in \(1, 2, 4, 8\), got 3"):
        get_directions("zorder", 2, 3, 3)
    with pytest.raises(TypeError, match=r"scan_directions: grid size W must be an int >= 1, got 3.0 \(float\)"):
        scan_directions("sweep", 2, 3.0, 2)


def test_direction_spec_and_parse():
    with pytest.raises(TypeError, match=r"DirectionSpec: num_directions must be an int .* got '8' \(str\)"):
        DirectionSpec("hilbert", "8")
    with pytest.raises(TypeError, match=r"scan must be a family name \('hilbert'\), a 'family-K' string \('hilbert-8'\)"
                                        r", a \(family, K\) tuple, a DirectionSpec or a DirectionSet, got 8 \(int\)"):
        DirectionSpec.parse(8)
    with pytest.raises(ValueError, match=r"scan as a tuple must be \(family, K\), e.g. \('hilbert', 8\), got "
                                         r"\('hilbert',\)"):
        DirectionSpec.parse(("hilbert",))
    with pytest.raises(TypeError, match=r"DirectionSpec: num_directions must be an int .* got .8. \(str\)"):
        resolve_directions("hilbert", 4, 4, num_directions="8")


def test_unknown_or_mistyped_family():
    with pytest.raises(ValueError, match=r"unknown scan family 'hilbrt'; known: sweep, snake, zorder"):
        canonical_family("hilbrt")
    with pytest.raises(TypeError, match=r"scan family must be a string \(one of sweep, .*\), got None \(NoneType\)"):
        canonical_family(None)


def test_custom_spec_describes_but_cannot_build():
    custom = DirectionSet.from_index(torch.arange(6).flip(0), 2, 3)
    assert custom.spec == DirectionSpec("custom", 1)
    with pytest.raises(ValueError, match=r"DirectionSpec\('custom', ...\) has no scan order to build; pass the "
                                         r"DirectionSet of the custom order"):
        DirectionSpec("custom", 1).at(2, 3)


def test_custom_set_grid_size():
    with pytest.raises(TypeError, match=r"DirectionSet.from_index: grid size W must be an int >= 1, got 3.5 \(float\)"):
        DirectionSet.from_index(torch.arange(6), 2, 3.5)
    with pytest.raises(ValueError, match=r"index must be \(K, 6\), got \(1, 5\)"):
        DirectionSet.from_index(torch.arange(5), 2, 3)

"""Every sequence in tests/fixtures/scan_orders.json (captured from the upstream code) is reproduced exactly."""
import json

import pytest
import torch
from paths import FIXTURES as FIXTURES_DIR

from vision_ssm.ops import get_directions, merge, route, scan_directions, scan_order

FIXTURE = json.loads((FIXTURES_DIR / "scan_orders.json").read_text())
INDEX_FLAT = FIXTURE["mambaad_index_flat"]["orders"]
DIRECTIONS = FIXTURE["mambaad_directions"]["orders"]
CROSS = FIXTURE["vmamba_cross_scan"]["orders"]

CASES_FLAT = [(t, int(s)) for t, sizes in INDEX_FLAT.items() for s in sizes]
CASES_DIRS = [(int(s), t, int(k[1:])) for s, fams in DIRECTIONS.items() for t, ks in fams.items() for k in ks]


def test_fixture_covers_what_we_expect():
    assert set(INDEX_FLAT) == {"sweep", "scan", "zorder", "zigzag", "hilbert"}
    assert len(CASES_FLAT) == 30 and len(CASES_DIRS) == 30 and set(CROSS) == {"4x4", "3x5", "5x3"}


@pytest.mark.parametrize("scan_type,size", CASES_FLAT)
def test_mambaad_index_flat(scan_type, size):
    expected = torch.tensor(INDEX_FLAT[scan_type][str(size)])
    assert torch.equal(scan_order(scan_type, size, size), expected)
    # index_flat_inv = argsort(index_flat), as MambaAD stores it
    dirs = get_directions(scan_type, size, size, 1)
    assert torch.equal(dirs.inverse[0], torch.argsort(expected))


@pytest.mark.parametrize("size,scan_type,K", CASES_DIRS)
def test_mambaad_directions(size, scan_type, K):
    expected = torch.tensor(DIRECTIONS[str(size)][scan_type][f"K{K}"])
    assert torch.equal(scan_directions(scan_type, size, size, K), expected)
    assert torch.equal(get_directions(scan_type, size, size, K).index, expected)


@pytest.mark.parametrize("size", [4, 8])
def test_mambaad_identical_direction_pairs(size):
    pairs = FIXTURE["mambaad_directions"]["identical_directions_K8"]["pairs"][str(size)]
    for scan_type, listed in pairs.items():
        idx = scan_directions(scan_type, size, size, 8)
        same = sorted([i, j] for i in range(8) for j in range(i + 1, 8) if torch.equal(idx[i], idx[j]))
        assert same == sorted(listed), scan_type


@pytest.mark.parametrize("hw", sorted(CROSS))
def test_vmamba_cross_scan(hw):
    H, W = map(int, hw.split("x"))
    expected = torch.tensor(CROSS[hw])
    assert torch.equal(scan_directions("sweep", H, W, 4), expected)
    # routing an arange map reads exactly these sequences, in either layout
    x = torch.arange(H * W, dtype=torch.float64).view(1, 1, H, W)
    dirs = get_directions("sweep", H, W, 4)
    assert torch.equal(route(x, dirs)[0, :, 0], expected.double())
    assert torch.equal(route(x.permute(0, 2, 3, 1), dirs, channels_last=True)[0, :, 0], expected.double())
    # CrossMerge(CrossScan(x)) == 4 x
    assert torch.equal(merge(route(x, dirs), dirs), 4 * x)

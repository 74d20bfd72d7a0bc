"""Properties of every scan family and direction set for any H×W (permutation, inverse, locality, cache)."""
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_ssm.ops import (
    FAMILIES,
    DirectionSet,
    DirectionSpec,
    canonical_family,
    get_directions,
    resolve_directions,
    scan_directions,
    scan_order,
    supported_directions,
)
from vision_ssm.ops.geometry.curves import enclosing_bits
from vision_ssm.ops.geometry.orders import oriented_positions

CASES = [(f, k) for f in FAMILIES for k in supported_directions(f)]
SIZES = [(1, 1), (1, 5), (5, 1), (2, 3), (3, 5), (5, 3), (4, 4), (6, 10), (7, 7), (8, 8), (9, 16), (16, 9)]


def _steps(order: torch.Tensor, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    r, c = order.div(W, rounding_mode="floor"), order.remainder(W)
    return (r[1:] - r[:-1]).abs(), (c[1:] - c[:-1]).abs()


def _is_permutation(rows: torch.Tensor, L: int) -> bool:
    return torch.equal(rows.sort(dim=-1).values, torch.arange(L).expand_as(rows))


def _check_set(family: str, H: int, W: int, K: int) -> None:
    dirs = get_directions(family, H, W, K)
    L = H * W
    assert dirs.index.shape == dirs.inverse.shape == (K, L)
    assert dirs.index.dtype == dirs.inverse.dtype == torch.int64
    assert _is_permutation(dirs.index, L)
    ar = torch.arange(L).expand(K, L)
    assert torch.equal(dirs.inverse.gather(1, dirs.index), ar)  # inverse[index[t]] == t
    assert torch.equal(dirs.index.gather(1, dirs.inverse), ar)  # index[inverse[p]] == p
    assert (dirs.K, dirs.L, dirs.H, dirs.W, dirs.name) == (K, L, H, W, f"{canonical_family(family)}-{K}")


@pytest.mark.parametrize("family,K", CASES)
@pytest.mark.parametrize("H,W", SIZES)
def test_every_direction_set_is_a_permutation_with_exact_inverse(family, K, H, W):
    _check_set(family, H, W, K)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CASES), st.integers(1, 64), st.integers(1, 64))
def test_any_size_property(case, H, W):
    family, K = case
    _check_set(family, H, W, K)
    idx = scan_directions(family, H, W, K)
    if family != "quadsnake" and K >= 2:  # the second half of the stack reverses the first
        assert torch.equal(idx[K // 2:], idx[: K // 2].flip(1))


def _neighbour_case(family, H, W, K):
    """Consecutive steps of every direction are grid neighbours (4-neighbourhood, or 8 for diagonals)."""
    idx = get_directions(family, H, W, K).index
    for k in range(K):
        # transposed/rotated orientations read the oriented grid, but the step is measured on the original grid
        dr, dc = _steps(idx[k], W)
        if family in ("snake", "hilbert") or (family == "quadsnake" and k < 2):
            assert torch.all(dr + dc == 1), (family, H, W, k)
        else:  # zigzag, diagsnake (and QuadSnake routes 2, 3): king moves
            assert torch.all(torch.maximum(dr, dc) == 1), (family, H, W, k)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["snake", "zigzag", "diagsnake", "quadsnake"]), st.integers(1, 64), st.integers(1, 64))
def test_serpentines_step_to_neighbours_at_any_size(family, H, W):
    if H * W > 1:
        _neighbour_case(family, H, W, max(supported_directions(family)))


@pytest.mark.parametrize("S", [2, 4, 8, 16, 32, 64])
def test_hilbert_steps_to_4_neighbours_on_power_of_two_squares(S):
    _neighbour_case("hilbert", S, S, 8)
    order = scan_order("hilbert", S, S)
    assert order[0] == 0 and order[-1] == S - 1  # starts top-left, ends top-right (blocks.md §2.2)


def test_hilbert_is_not_adjacent_in_general():
    # the filtered curve on a non-power-of-two grid does jump: the documented guarantee is block-contiguity
    dr, dc = _steps(scan_order("hilbert", 7, 7), 7)
    assert (dr + dc > 1).any()


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["hilbert", "zorder"]), st.integers(1, 40), st.integers(1, 40))
def test_dyadic_blocks_are_visited_contiguously(family, H, W):
    """Every aligned 2^j × 2^j block of the enclosing square, cut to the grid, is one contiguous run."""
    order = scan_order(family, H, W)
    r, c = order // W, order % W
    for j in range(1, enclosing_bits(H, W) + 1):
        block = (r >> j) * (1 << 16) + (c >> j)
        changes = int((block[1:] != block[:-1]).sum())
        assert changes + 1 == len(torch.unique(block)), (family, H, W, j)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["hilbert", "zorder"]), st.integers(1, 40), st.integers(1, 40))
def test_any_size_is_the_enclosing_square_curve_filtered(family, H, W):
    S = 1 << enclosing_bits(H, W)
    full = scan_order(family, S, S)
    r, c = full // S, full % S
    keep = (r < H) & (c < W)
    assert torch.equal(scan_order(family, H, W), (r * W + c)[keep])


def test_spec_examples_at_4x4():
    # blocks.md §2.2 / §2.5 tables
    assert scan_order("zigzag", 4, 4).tolist() == [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]
    assert scan_order("zorder", 4, 4).tolist() == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]
    q = scan_directions("quadsnake", 4, 4, 4).tolist()
    assert q[0] == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11, 15, 14, 13, 12]
    assert q[1] == [12, 13, 14, 15, 11, 10, 9, 8, 4, 5, 6, 7, 3, 2, 1, 0]
    assert q[2] == [0, 4, 1, 2, 5, 8, 12, 9, 6, 3, 7, 10, 13, 14, 11, 15]
    assert q[3] == [15, 11, 14, 13, 10, 7, 3, 6, 9, 12, 8, 5, 2, 1, 4, 0]


@pytest.mark.parametrize("S", [3, 4, 8])
def test_quadsnake_diagonal_route_is_the_transposed_zigzag(S):
    t = oriented_positions(S, S, "transpose").reshape(-1)
    assert torch.equal(scan_order("diagsnake", S, S), t[scan_order("zigzag", S, S)])


def test_non_square_cross_scan_and_orientations():
    H, W = 2, 3
    idx = scan_directions("sweep", H, W, 8)
    assert idx[1].tolist() == [0, 3, 1, 4, 2, 5]  # blocks.md §1.8
    # o2 = rot90(k=1): oriented[i, j] = x[j, W-1-i]; o3 = horizontal flip
    assert idx[2].tolist() == [2, 5, 1, 4, 0, 3]
    assert idx[3].tolist() == [2, 1, 0, 5, 4, 3]


def test_aliases_and_errors():
    assert torch.equal(scan_order("scan", 5, 4), scan_order("snake", 5, 4))
    assert get_directions("scan", 4, 4, 8) is get_directions("snake", 4, 4, 8)
    with pytest.raises(ValueError, match="unknown scan family"):
        scan_order("spiral", 4, 4)
    with pytest.raises(ValueError, match="num_directions"):
        scan_directions("hilbert", 4, 4, 3)
    with pytest.raises(ValueError, match="num_directions"):
        get_directions("quadsnake", 4, 4, 8)
    with pytest.raises(ValueError):
        scan_order("sweep", 0, 4)


def test_cache_returns_the_same_object_per_key():
    a = get_directions("hilbert", 12, 20, 8)
    assert get_directions("hilbert", 12, 20, 8, device="cpu") is a
    assert get_directions("hilbert", 12, 20, 8, torch.device("cpu")) is a
    assert get_directions("hilbert", 12, 20, 4) is not a
    assert get_directions("hilbert", 20, 12, 8) is not a
    assert get_directions("zorder", 12, 20, 8) is not a
    assert a.to("cpu") is a


def test_direction_spec_and_resolve():
    spec = DirectionSpec.parse("hilbert-8")
    assert spec == DirectionSpec("hilbert", 8) == DirectionSpec.parse("hilbert", 8)
    assert spec == DirectionSpec.parse(("hilbert", 8))
    assert spec.name == "hilbert-8" and DirectionSpec.parse("scan-2").family == "snake"
    assert DirectionSpec.parse("quadsnake").num_directions == 4
    dirs = spec.at(6, 10)
    assert dirs is get_directions("hilbert", 6, 10, 8) and dirs.spec == spec
    assert resolve_directions("hilbert", 6, 10, 8) is dirs
    assert resolve_directions(spec, 6, 10) is dirs
    assert resolve_directions(dirs, 6, 10, 8) is dirs
    with pytest.raises(ValueError, match="is for 6x10"):
        resolve_directions(dirs, 8, 8)
    with pytest.raises(ValueError, match="expected 4"):
        resolve_directions("hilbert-8", 6, 10, 4)
    with pytest.raises(ValueError):
        DirectionSpec("hilbert", 3)
    assert {spec: 1}[DirectionSpec("hilbert", 8)] == 1  # hashable value object


def test_custom_direction_set_and_equality():
    idx = torch.stack([torch.arange(6), torch.arange(6).flip(0)])
    custom = DirectionSet.from_index(idx, 2, 3, name="mine")
    assert custom.K == 2 and torch.equal(custom.inverse, torch.argsort(idx, dim=1))
    assert custom != get_directions("sweep", 2, 3, 2)  # different family
    same = DirectionSet.from_index(idx.clone(), 2, 3)
    assert custom == same and hash(custom) != hash(None)
    with pytest.raises(ValueError, match="permutation"):
        DirectionSet.from_index(torch.zeros(1, 6, dtype=torch.long), 2, 3)
    assert "hilbert-8" in repr(get_directions("hilbert", 4, 4, 8))


# ---- optional reference libraries (the `scan` extra); skipped when absent --------------------------

@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6])
def test_hilbert_equals_numpy_hilbert_curve(bits):
    hilbert = pytest.importorskip("hilbert")
    np = pytest.importorskip("numpy")
    S = 1 << bits
    p = hilbert.decode(np.arange(S * S), 2, bits)
    expected = torch.from_numpy(p[:, 0] + p[:, 1] * S).long()
    assert torch.equal(scan_order("hilbert", S, S), expected)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6])
def test_zorder_equals_pyzorder(bits):
    pyzorder = pytest.importorskip("pyzorder")
    S = 1 << bits
    zi = pyzorder.ZOrderIndexer((0, S - 1), (0, S - 1))
    expected = [c * S + r for r, c in (zi.rc(t) for t in range(S * S))]  # as MambaAD's HSCANS uses it
    assert scan_order("zorder", S, S).tolist() == expected


def test_all_families_work_without_the_optional_libraries(monkeypatch):
    # any attempt to import them now raises ImportError; the cache is bypassed so every order is regenerated
    monkeypatch.setitem(sys.modules, "hilbert", None)
    monkeypatch.setitem(sys.modules, "pyzorder", None)
    for f in FAMILIES:
        for k in supported_directions(f):
            assert scan_directions(f, 6, 10, k).shape == (k, 60)


def test_cache_is_per_device():
    cpu = get_directions("zigzag", 5, 9, 4)
    meta = get_directions("zigzag", 5, 9, 4, device="meta")
    assert meta is not cpu and meta.index.device.type == "meta" and meta.inverse.device.type == "meta"
    assert get_directions("zigzag", 5, 9, 4, torch.device("meta")) is meta
    assert cpu.to("meta") is meta and meta.to("cpu") is cpu and meta == cpu


@pytest.mark.parametrize("family,K", CASES)
def test_walks_describe_the_index(family, K):
    """Every built-in set carries the walk of each direction, and the walks regenerate its index."""
    from vision_ssm.ops.geometry.orders import walk_order

    for H, W in [(1, 5), (3, 5), (8, 8), (9, 16)]:
        dirs = get_directions(family, H, W, K)
        assert dirs.walks is not None and len(dirs.walks) == K
        for walk, row in zip(dirs.walks, dirs.index):
            assert torch.equal(walk_order(walk, H, W), row), (family, K, H, W, walk)


def test_walk_flags_of_the_cross_scan():
    walks = get_directions("sweep", 4, 6, 4).walks
    assert [w.raster for w in walks] == [True] * 4
    assert [(w.column_major, w.reversed) for w in walks] == [(False, False), (True, False), (False, True), (True, True)]
    assert not any(w.raster for w in get_directions("hilbert", 4, 4, 2).walks)


def test_custom_set_walks_are_checked():
    dirs = get_directions("sweep", 3, 4, 2)
    custom = DirectionSet.from_index(dirs.index, 3, 4, walks=dirs.walks)
    assert custom.walks == dirs.walks
    assert DirectionSet.from_index(dirs.index, 3, 4).walks is None
    with pytest.raises(ValueError, match="walks do not describe"):
        DirectionSet.from_index(dirs.index.flip(0), 3, 4, walks=dirs.walks)


def test_index_as_is_cached_per_device_and_dtype():
    dirs = get_directions("zorder", 4, 4, 4)
    i32 = dirs.index_as("cpu")
    assert i32.dtype == torch.int32 and torch.equal(i32.long(), dirs.index)
    assert dirs.index_as("cpu") is i32
    with torch.inference_mode():
        i64 = dirs.index_as("cpu", torch.int64)
    assert not i64.is_inference()

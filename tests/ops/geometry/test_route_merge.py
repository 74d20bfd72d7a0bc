"""route / merge: identities, adjointness, layouts, autograd."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_ssm.ops import (
    FAMILIES,
    gather_directions,
    get_directions,
    merge,
    route,
    supported_directions,
)
from vision_ssm.ops.geometry.route import scatter_directions

CASES = [(f, k) for f in FAMILIES for k in supported_directions(f)]


def _loop_route(x, dirs):
    """Reference: out[b, k, :, t] = x[b, :, index[k, t]], one position at a time."""
    B, D, H, W = x.shape
    flat = x.reshape(B, D, H * W)
    out = torch.empty(B, dirs.K, D, H * W, dtype=x.dtype)
    for k in range(dirs.K):
        for t in range(H * W):
            out[:, k, :, t] = flat[:, :, dirs.index[k, t]]
    return out


@pytest.mark.parametrize("family,K", CASES)
def test_route_matches_definition_and_merge_inverts(family, K):
    g = torch.Generator().manual_seed(0)
    H, W = 5, 7
    dirs = get_directions(family, H, W, K)
    x = torch.randint(-50, 50, (2, 3, H, W), generator=g).double()  # integer-valued: sums are exact
    xs = route(x, dirs)
    assert xs.shape == (2, K, 3, H * W) and xs.is_contiguous()
    assert torch.equal(xs, _loop_route(x, dirs))
    assert torch.equal(merge(xs, dirs), K * x)  # merge ∘ route = K · id
    # route ∘ merge on a y that is K copies of one routed map: each direction gets K · its own sequence
    assert torch.equal(route(merge(xs, dirs), dirs), K * xs)
    # un-routing one direction alone is exact (the inverse permutation)
    assert torch.equal(scatter_directions(xs, dirs), x.reshape(2, 1, 3, H * W).expand(2, K, 3, H * W))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(CASES), st.integers(1, 64), st.integers(1, 64), st.booleans())
def test_adjointness_any_size(case, H, W, channels_last):
    """<route(x), y> == <x, merge(y)> in float64, any H×W, either layout."""
    family, K = case
    g = torch.Generator().manual_seed(H * 100 + W)
    dirs = get_directions(family, H, W, K)
    D = 3
    x = torch.randn(2, D, H, W, generator=g, dtype=torch.float64)
    y = torch.randn(2, K, D, H * W, generator=g, dtype=torch.float64)
    xin = x.permute(0, 2, 3, 1).contiguous() if channels_last else x
    lhs = (route(xin, dirs, channels_last=channels_last) * y).sum()
    m = merge(y, dirs, channels_last=channels_last)
    rhs = (xin * m).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    xi = xin.round()  # integer-valued: the K-term sum is exact
    assert torch.equal(merge(route(xi, dirs, channels_last), dirs, channels_last), K * xi)


@pytest.mark.parametrize("family,K", [("sweep", 4), ("hilbert", 8), ("quadsnake", 4), ("zigzag", 2)])
def test_channels_last_equals_channels_first(family, K):
    g = torch.Generator().manual_seed(1)
    H, W = 6, 9
    dirs = get_directions(family, H, W, K)
    x = torch.randn(2, 4, H, W, generator=g)
    xl = x.permute(0, 2, 3, 1).contiguous()
    assert torch.equal(route(xl, dirs, channels_last=True), route(x, dirs))
    y = torch.randn(2, K, 4, H * W, generator=g)
    ml = merge(y, dirs, channels_last=True)
    assert ml.shape == (2, H, W, 4) and ml.is_contiguous()
    assert torch.equal(ml, merge(y, dirs).permute(0, 2, 3, 1))
    # non-contiguous inputs are fine
    assert torch.equal(route(x.permute(0, 2, 3, 1), dirs, channels_last=True), route(x, dirs))
    assert torch.equal(merge(y.transpose(2, 3).contiguous().transpose(2, 3), dirs), merge(y, dirs))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("family,K", [("sweep", 4), ("hilbert", 8), ("quadsnake", 4)])
def test_gradcheck(family, K, channels_last):
    dirs = get_directions(family, 3, 5, K)
    shape = (2, 3, 5, 2) if channels_last else (2, 2, 3, 5)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, K, 2, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: route(t, dirs, channels_last), (x,))
    assert torch.autograd.gradcheck(lambda t: merge(t, dirs, channels_last), (y,))
    assert torch.autograd.gradgradcheck(lambda t: route(t, dirs, channels_last), (x,))
    assert torch.autograd.gradgradcheck(lambda t: merge(t, dirs, channels_last), (y,))


def test_backward_is_the_adjoint():
    dirs = get_directions("zorder", 5, 6, 8)
    x = torch.randn(1, 2, 5, 6, requires_grad=True)
    y = torch.randn(1, 8, 2, 30)
    route(x, dirs).backward(y)
    assert torch.equal(x.grad, merge(y, dirs))
    y.requires_grad_(True)
    g = torch.randn(1, 2, 5, 6)
    merge(y, dirs).backward(g)
    assert torch.equal(y.grad, route(g, dirs))


def test_gather_directions_matches_route_per_direction():
    dirs = get_directions("hilbert", 4, 6, 4)
    t = torch.randn(2, 4, 3, 24)
    out = gather_directions(t, dirs)
    for k in range(4):
        assert torch.equal(out[:, k], route(t[:, k].reshape(2, 3, 4, 6), dirs)[:, k])
    assert torch.equal(scatter_directions(out, dirs), t)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes_are_preserved(dtype):
    dirs = get_directions("snake", 4, 4, 2)
    x = torch.randn(1, 2, 4, 4).to(dtype)
    xs = route(x, dirs)
    assert xs.dtype == dtype and merge(xs, dirs).dtype == dtype
    assert torch.equal(merge(xs, dirs), (2 * x.float()).to(dtype))


def test_shape_errors():
    dirs = get_directions("sweep", 4, 4, 4)
    with pytest.raises(ValueError, match="4x4"):
        route(torch.zeros(1, 2, 4, 5), dirs)
    with pytest.raises(ValueError, match="K=4"):
        merge(torch.zeros(1, 2, 2, 16), dirs)
    with pytest.raises(ValueError, match="4-D"):
        route(torch.zeros(2, 16), dirs)
    with pytest.raises(TypeError, match="DirectionSet"):
        route(torch.zeros(1, 2, 4, 4), "sweep")


def test_torch_compile_fullgraph():
    """route/merge trace into one graph (dynamo + AOT autograd; the CPU-only 'aot_eager' backend)."""
    dirs = get_directions("hilbert", 6, 7, 8)

    def f(x):
        return (merge(route(x, dirs) * 2.0, dirs) ** 2).sum()

    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    out = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
    (g,) = torch.autograd.grad(out, x)
    x2 = x.detach().requires_grad_(True)
    ref = f(x2)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, x2.grad)


@pytest.mark.parametrize("family,K", [("sweep", 1), ("hilbert", 8), ("quadsnake", 4)])
def test_merge_paths_agree(family, K):
    """The index_add_ path (CPU) and the gather path (other devices) give the same merge."""
    from vision_ssm.ops.geometry.route import _merge_impl

    dirs = get_directions(family, 5, 6, K)
    y = torch.randint(-9, 9, (2, K, 3, 30)).double()
    for cl in (False, True):
        a = _merge_impl(y, dirs, cl, scatter=True)
        b = _merge_impl(y, dirs, cl, scatter=False)
        assert torch.equal(a, b) and torch.equal(a, merge(y, dirs, cl))


def test_direction_cache_built_in_inference_mode_still_serves_autograd():
    """A set first requested under torch.inference_mode() must not poison later training steps."""
    from vision_ssm.ops import get_directions, route

    dirs_inf = None
    with torch.inference_mode():
        dirs_inf = get_directions("zigzag", 7, 5, 4)
    assert not dirs_inf.index.is_inference() and not dirs_inf.inverse.is_inference()
    x = torch.randn(2, 3, 7, 5, requires_grad=True)
    route(x, get_directions("zigzag", 7, 5, 4)).sum().backward()
    assert x.grad is not None

"""The whole-image N = 1 SS2D forward (``kernel.py``) under Triton's interpreter.

Collected by ``test_whole_image.py`` in a child process with ``TRITON_INTERPRET=1``, like
``tests/ops/triton/interp_cases.py``. Sizes cover ragged images (padding in both frames), widths below
one row chunk, every raster-walk code, and all options.
"""
from __future__ import annotations

import os

import pytest
import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run through test_whole_image.py"

from benchmarks.experiments.whole_image.kernel import direction_codes, image_plan, ss2d_forward  # noqa: E402
from vision_ssm.ops import DirectionSet, Walk, get_directions, ss2d_scan  # noqa: E402
from vision_ssm.ops.triton._launch import config_override  # noqa: E402
from vision_ssm.ops.triton.scan import ss2d_scan_triton  # noqa: E402

TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}


def _walks(H: int, W: int) -> list[torch.Tensor]:
    """Row-major, column-major, reversed row-major, reversed column-major (codes 0..3)."""
    row = torch.arange(H * W)
    col = row.view(H, W).t().reshape(-1)
    return [row, col, row.flip(0), col.flip(0)]


def _dirs(H, W, spec) -> DirectionSet:
    if isinstance(spec, int):
        return get_directions("sweep", H, W, spec, "cpu")
    codes = [Walk("sweep", ("identity", "transpose")[c & 1], bool(c & 2)) for c in spec]
    return DirectionSet.from_index(torch.stack([_walks(H, W)[c] for c in spec]), H, W, walks=codes)


def _inputs(Bt, Dm, H, W, K, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    L = H * W
    rn = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    return dict(
        x=rn(Bt, Dm, L).to(dtype), delta=(0.5 * rn(Bt, K, Dm, L)).to(dtype), A=-torch.rand(K * Dm, 1, generator=gen),
        B=rn(Bt, K, 1, L).to(dtype), C=rn(Bt, K, 1, L).to(dtype), D=rn(K * Dm),
        bias=torch.rand(K * Dm, generator=gen) - 0.5,
    )


@pytest.mark.parametrize(
    "H,W,spec,dtype,softplus,use_d,use_bias",
    [
        (9, 7, 4, torch.float32, True, True, True),  # VMamba's cross-scan, ragged in both frames
        (8, 12, 2, torch.bfloat16, True, False, True),
        (10, 3, 1, torch.float16, False, True, True),  # a row narrower than one row chunk
        (12, 12, (3, 0, 1, 2), torch.float32, True, True, False),  # every code, in another order
        (16, 5, (1, 3), torch.float32, False, False, False),  # column walks only
        (11, 17, (2,), torch.bfloat16, True, True, True),  # one reversed row walk
    ],
)
def test_interp_image_forward_matches_reference(H, W, spec, dtype, softplus, use_d, use_bias):
    dirs = _dirs(H, W, spec)
    K = dirs.K
    inp = _inputs(2, 3, H, W, K, dtype)
    if not softplus:  # positive steps: decays below 1, as softplus gives
        inp["delta"] = inp["delta"].abs()
    D = inp["D"] if use_d else None
    bias = inp["bias"].abs() if use_bias else None
    args = (inp["x"], inp["delta"], inp["A"], inp["B"], inp["C"], D, bias)
    assert image_plan(inp["x"], inp["delta"], inp["A"], inp["B"], inp["C"], dirs) is not None
    with torch.no_grad():
        got = ss2d_forward(*args, dirs, softplus)
        again = ss2d_forward(*args, dirs, softplus)
        with config_override(T=4, BD_fwd=2):
            slab = ss2d_scan_triton(*args, dirs, softplus)  # the library: always the slab kernels
    assert got.dtype == dtype and got.is_contiguous()  # the whole-image kernel ran (slabs: channel-last)
    assert not slab.is_contiguous()
    ref = ss2d_scan(*[a.float() if a is not None else None for a in args], dirs, softplus, backend="reference")
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float(), ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(got.float(), slab.float(), rtol=rtol, atol=atol)
    assert torch.equal(got, again)


def test_interp_image_codes_recognise_raster_walks_only():
    H, W = 9, 10
    walks = _walks(H, W)
    custom = DirectionSet.from_index(torch.stack(walks), H, W)  # the same walks, given as a bare index
    assert direction_codes(get_directions("sweep", H, W, 4, "cpu").to("cpu")) == 0 + (1 << 2) + (2 << 4) + (3 << 6)
    assert direction_codes(custom) is None  # custom sets carry no walk description
    assert direction_codes(get_directions("sweep", H, W, 4, "cpu")) == 0b11100100
    assert direction_codes(get_directions("sweep", H, W, 8, "cpu")) is None  # rotated orientations
    for family in ("snake", "hilbert", "zorder"):
        assert direction_codes(get_directions(family, H, W, 2, "cpu")) is None, family
    assert direction_codes(get_directions("sweep", 7, W, 4, "cpu")) is None  # below one 8-pixel column chunk
    assert direction_codes(get_directions("sweep", 128, 128, 4, "cpu")) is None  # beyond one program's tile


def test_interp_image_plan_conditions():
    H, W, K = 8, 8, 4
    dirs = get_directions("sweep", H, W, K, "cpu")
    inp = _inputs(1, 2, H, W, K, torch.float32)
    x, d, A, B, C = inp["x"], inp["delta"], inp["A"], inp["B"], inp["C"]
    assert image_plan(x, d, A, B, C, dirs) == 0b11100100
    assert image_plan(x, d, torch.cat([A, A], 1), B, C, dirs) is None  # N = 2
    x_cl = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert image_plan(x_cl, d, A, B, C, dirs) is None  # channel-last: the slab kernels
    with torch.no_grad():  # the library never takes the whole-image kernel (parked here)
        assert not ss2d_scan_triton(x, d, A, B, C, None, None, dirs, True).is_contiguous()
    # with gradients the forward runs the slab kernels (the backward reads their states)
    args = [t.clone().requires_grad_() for t in (x, d, A, B, C)]
    y = ss2d_forward(*args, None, None, dirs, True)
    assert not y.is_contiguous()


@pytest.mark.parametrize("spec", [4, (1, 0, 3, 2)])
def test_interp_image_direction_orders_agree(spec):
    """The kernel walks the directions in their order or grouped by frame (a register-pressure
    choice); both give the reference result."""
    from benchmarks.experiments.whole_image.kernel import image_forward

    H, W = 9, 13
    dirs = _dirs(H, W, spec)
    inp = _inputs(2, 2, H, W, dirs.K, torch.float32, seed=4)
    args = (inp["x"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["bias"])
    ref = ss2d_scan(*args, dirs, True, backend="reference")
    codes = direction_codes(dirs)
    for grouped in (False, True):
        got = image_forward(*args, True, codes, H, W, grouped=grouped)
        torch.testing.assert_close(got, ref, rtol=6e-4, atol=2e-3)


def test_interp_image_plan_needs_int32_offsets_within_a_batch_element():
    from benchmarks.experiments.whole_image.kernel import _batch_slice_fits_i32

    assert _batch_slice_fits_i32(torch.empty(2, 3, 5))
    # only shapes and strides matter: meta tensors stand in for views of huge buffers
    assert _batch_slice_fits_i32(torch.empty_strided((2, 3, 5), (2**40, 2**29, 1), device="meta"))
    assert not _batch_slice_fits_i32(torch.empty_strided((2, 3, 5), (0, 2**30, 1), device="meta"))
    assert not _batch_slice_fits_i32(torch.empty_strided((1, 2, 2**31), (0, 2**31, 1), device="meta"))

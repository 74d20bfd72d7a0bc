"""The functional forms of the ``chunked`` scan that exporters record (``.unrolled``, the default, and
``.associative``) equal the reference loop for any length, state size, group layout and chunk size, with
gradients (autograd through the recorded operations)."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_ssm.ops import selective_scan
from vision_ssm.ops.chunked import scan as chunked_scan
from vision_ssm.ops.chunked.associative import associative_scan_core
from vision_ssm.ops.chunked.unrolled import unrolled_scan_core
from vision_ssm.ops.scan.prologue import run_with_core


def _args(Bt, Dm, L, N, gb, gc, seed):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    B = rn(Dm, N) if gb == 0 else rn(Bt, gb, N, L)
    C = rn(Dm, N) if gc == 0 else rn(Bt, gc, N, L)
    return [rn(Bt, Dm, L), rn(Bt, Dm, L), -torch.rand(Dm, N, generator=g) - 0.05, B, C, rn(Dm), None, rn(Dm) * 0.1]


@settings(max_examples=40, deadline=None)
@given(L=st.integers(1, 70), N=st.sampled_from([1, 2, 5]),
       groups=st.sampled_from([(0, 0), (1, 1), (2, 2), (2, 1), (0, 2)]), chunk=st.sampled_from([1, 4, 16]),
       form=st.sampled_from(["unrolled", "associative"]), seed=st.integers(0, 99))
def test_export_forms_match_the_reference(L, N, groups, chunk, form, seed):
    args = _args(2, 4, L, N, *groups, seed)
    fn = unrolled_scan_core if form == "unrolled" else associative_scan_core
    leaves = [a if a is None else a.clone().requires_grad_() for a in args]
    y, last = run_with_core(lambda u, dt, A, B, C, _: fn(u, dt, A, B, C, chunk), *leaves, True, True)
    ref_leaves = [a if a is None else a.clone().requires_grad_() for a in args]
    want, want_last = selective_scan(*ref_leaves, delta_softplus=True, return_last_state=True, backend="reference")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, want_last, rtol=1e-5, atol=1e-5)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    (want * gy).sum().backward()
    for a, r in zip(leaves, ref_leaves):
        if a is not None:
            torch.testing.assert_close(a.grad, r.grad, rtol=1e-4, atol=1e-4)


def test_exporters_record_the_unrolled_form():
    assert chunked_scan.EXPORT_CORE is unrolled_scan_core

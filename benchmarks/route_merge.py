"""CPU cost of route + merge (cross-scan + cross-merge) versus naive torch.stack/flip/transpose code.

Default setting: a VMamba stage-1 map, B=8, D=192, 56×56, fp32. Three comparisons:

- ``sweep-4``: :func:`vision_ssm.ops.route`/:func:`~vision_ssm.ops.merge` versus VMamba v0's inline
  ``torch.stack([x, x^T]) / torch.flip`` cross-scan and its ``flip + transpose`` cross-merge;
- ``hilbert-8``: versus MambaAD's ``forward_core`` style (transpose / rot90 the map, ``scatter_`` by
  the curve's inverse, stack, flip; then flip back, ``scatter_`` by the curve, un-rotate and sum);
- the same two with channel-last (``(B, H, W, D)``) input and output.

Each line reports the median wall time of route and of merge (forward only) and of route+merge
forward+backward, for ours and for the naive code (run alternately, one call per window), and the
ratio naive / ours (> 1: ours is faster); ``--json`` also stores each median's spread.
Outputs are checked to be equal before timing.

Usage (from the repository root)::

    python -m benchmarks.route_merge [--batch 8] [--dim 192] [--size 56] [--repeats 20] [--threads N]
"""
from __future__ import annotations

from functools import partial

import torch

from benchmarks import common
from vision_ssm.ops import get_directions, merge, route, scan_order


def naive_cross_scan(x: torch.Tensor) -> torch.Tensor:
    """VMamba v0: (B, D, H, W) -> (B, 4, D, L) with stack/transpose/flip."""
    B, D, H, W = x.shape
    x_hwwh = torch.stack([x.reshape(B, D, H * W), x.transpose(2, 3).contiguous().view(B, D, H * W)], dim=1)
    return torch.cat([x_hwwh, torch.flip(x_hwwh, dims=[-1])], dim=1)


def naive_cross_merge(y: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """VMamba v0: (B, 4, D, L) -> (B, D, H, W)."""
    B, _, D, L = y.shape
    inv = torch.flip(y[:, 2:4], dims=[-1])
    wh = y[:, 1].view(B, D, W, H).transpose(2, 3).reshape(B, D, L)
    invwh = inv[:, 1].view(B, D, W, H).transpose(2, 3).reshape(B, D, L)
    return (y[:, 0] + inv[:, 0] + wh + invwh).view(B, D, H, W)


def _oriented(x: torch.Tensor) -> list[torch.Tensor]:
    t = torch.rot90(x, 1, (2, 3))
    return [x, x.transpose(2, 3), t, t.transpose(2, 3)]


def _encode(t: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """MambaAD ``encode`` (blocks.md §2.1): ``zeros.scatter_(2, index_flat_inv, img)``; (B, D, L) -> (B, D, L)."""
    return torch.zeros_like(t).scatter_(2, inv.expand(t.shape), t)


def _decode(t: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """MambaAD ``decode``: ``zeros.scatter_(2, index_flat, seq)``."""
    return torch.zeros_like(t).scatter_(2, order.expand(t.shape), t)


def naive_mambaad_scan(x: torch.Tensor, inv: torch.Tensor, inv_t: torch.Tensor) -> torch.Tensor:
    """MambaAD-style 8 directions: orient, encode by the curve, stack, flip. (B, D, H, W) -> (B, 8, D, L)."""
    B, D, H, W = x.shape
    invs = [inv, inv_t, inv_t, inv]  # curve on the (H, W) or (W, H) oriented grid
    xs = torch.stack([_encode(o.reshape(B, D, H * W), i) for o, i in zip(_oriented(x), invs)], dim=1)
    return torch.cat([xs, torch.flip(xs, dims=[-1])], dim=1)


def naive_mambaad_merge(y: torch.Tensor, H: int, W: int, order: torch.Tensor, order_t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`naive_mambaad_scan`, summed: flip back, decode, un-orient. -> (B, D, H, W)."""
    B, _, D, L = y.shape
    y = y[:, :4] + torch.flip(y[:, 4:], dims=[-1])
    s0 = _decode(y[:, 0], order).view(B, D, H, W)
    s1 = _decode(y[:, 1], order_t).view(B, D, W, H).transpose(2, 3)
    s2 = torch.rot90(_decode(y[:, 2], order_t).view(B, D, W, H), 3, (2, 3))
    s3 = torch.rot90(_decode(y[:, 3], order).view(B, D, H, W).transpose(2, 3), 3, (2, 3))
    return s0 + s1 + s2 + s3


def _median_ms_pair(fa, fb, repeats: int) -> tuple[common.Stats, common.Stats]:
    """Wall times of ``fa`` and ``fb``, run alternately so that load changes hit both alike."""
    t = common.measure({"ours": fa, "naive": fb}, warmup=1, windows=repeats)
    return t["ours"], t["naive"]


def _fwd_bwd(scan, merge_fn, x: torch.Tensor):
    def run():
        xr = x.detach().requires_grad_(True)
        merge_fn(scan(xr)).sum().backward()
    return run


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    B, D, H = args.batch, args.dim, args.size
    W = H
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, H, W, generator=g)
    xl = x.permute(0, 2, 3, 1).contiguous()
    env = common.environment()
    common.print_header(env, f"route+merge on CPU: B={B} D={D} H=W={H} fp32, median of {args.repeats}")
    results = {}

    order, order_t = scan_order("hilbert", H, W), scan_order("hilbert", W, H)
    inv, inv_t = torch.argsort(order), torch.argsort(order_t)
    cases = []
    d4 = get_directions("sweep", H, W, 4)
    d8 = get_directions("hilbert", H, W, 8)
    cases.append(("sweep-4 BCHW", x, d4, False, naive_cross_scan, lambda y: naive_cross_merge(y, H, W)))
    cases.append(("hilbert-8 BCHW", x, d8, False, lambda t: naive_mambaad_scan(t, inv, inv_t),
                  lambda y: naive_mambaad_merge(y, H, W, order, order_t)))
    cases.append(("sweep-4 BHWC", xl, d4, True, lambda t: naive_cross_scan(t.permute(0, 3, 1, 2)),
                  lambda y: naive_cross_merge(y, H, W).permute(0, 2, 3, 1).contiguous()))
    cases.append(("hilbert-8 BHWC", xl, d8, True,
                  lambda t: naive_mambaad_scan(t.permute(0, 3, 1, 2), inv, inv_t),
                  lambda y: naive_mambaad_merge(y, H, W, order, order_t).permute(0, 2, 3, 1).contiguous()))

    hdr = f"{'case':16s} {'':5s} {'route ms':>9s} {'merge ms':>9s} {'fwd+bwd ms':>11s}"
    print(hdr)
    for name, inp, dirs, cl, n_scan, n_merge in cases:
        ours_scan = lambda t, d=dirs, c=cl: route(t, d, channels_last=c)  # noqa: E731
        ours_merge = lambda y, d=dirs, c=cl: merge(y, d, channels_last=c)  # noqa: E731
        ys = ours_scan(inp)
        ny = n_scan(inp)
        assert torch.equal(ys, ny), name
        torch.testing.assert_close(ours_merge(ys), n_merge(ny), rtol=1e-6, atol=1e-5)
        r_route = _median_ms_pair(partial(ours_scan, inp), partial(n_scan, inp), args.repeats)
        r_merge = _median_ms_pair(partial(ours_merge, ys), partial(n_merge, ys), args.repeats)
        r_both = _median_ms_pair(_fwd_bwd(ours_scan, ours_merge, inp), _fwd_bwd(n_scan, n_merge, inp),
                                 max(3, args.repeats // 2))
        res = {who: (r_route[i], r_merge[i], r_both[i]) for i, who in enumerate(("ours", "naive"))}
        for who in ("ours", "naive"):
            r = res[who]
            print(f"{name:16s} {who:5s} {r[0].median:9.1f} {r[1].median:9.1f} {r[2].median:11.1f}")
        ratio = [n.median / o.median for n, o in zip(res["naive"], res["ours"])]
        print(f"{name:16s} {'ratio':5s} {ratio[0]:8.2f}x {ratio[1]:8.2f}x {ratio[2]:10.2f}x   (naive / ours)")
        results[name] = {who: dict(zip(("route", "merge", "fwd_bwd"), r)) for who, r in res.items()}
    common.finish(args.json, env, results)


if __name__ == "__main__":
    main()

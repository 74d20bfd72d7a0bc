"""GPU benchmark of the selective scan and the SS2D core: triton vs mamba-ssm vs chunked vs memory floor.

Run on a CUDA machine, from the repository root (mamba-ssm's ``selective_scan_cuda`` is used when
it is importable)::

    python -m benchmarks.gpu_scan                  # both tables, bf16 inputs, fp32 state
    python -m benchmarks.gpu_scan --tune scan,ss2d # also time the triton tile configurations
    python -m benchmarks.gpu_scan --json out.json  # also write every number (with spreads)
    python -m benchmarks.gpu_scan --only ss2d --official-vmamba ~/src/VMamba  # + the official route

Shapes are the issue's (Bt, K·D, L, N): VMamba-T vanilla stage 1 (N=16), VMamba-T s1l8 stage 1
(N=1) and stage 2. The 1-D table times ``selective_scan`` on already-routed inputs with ``G = K``
groups (as VMamba calls it). The SS2D table times the whole core: pixel-domain inputs, K = 4
``sweep`` directions (VMamba's cross-scan), routed copies + scan + merge, against the fused
triton kernel, the latter twice: on channel-first inputs (``fused``, which first copies them to
channel-last memory) and on the same values laid out channel-last (``fused_cl``: what the SS2D
layer hands the core on CUDA, so no copies). The memory floor is the bytes each op must move
(inputs read once, output written once) over the device-to-device copy bandwidth measured in the
same run. Times are medians of
``triton.testing.do_bench`` (:func:`benchmarks.common.kernel_stats`; the JSON also has the
20%-80% spread); fwd+bwd includes the backward of every differentiable input.

``--official-vmamba PATH`` (a clone of the official VMamba repository, :mod:`benchmarks.official`) adds
the official pipeline to the SS2D table: VMamba's Triton ``cross_scan_fn`` on the pixel-domain input,
mamba-ssm's scan on the four routed copies (δ, B, C come out of the official block already in route
order, so they are passed as they are), VMamba's Triton ``cross_merge_fn`` back to the pixel domain.
Before timing, :func:`check_official_route` makes sure the official cross-scan and cross-merge compute
this library's K = 4 ``sweep`` route and merge (else the rows would not time the same work).
"""
from __future__ import annotations

import math

import torch

from benchmarks import common

SHAPES = [(64, 4, 192, 3136, 16), (128, 4, 96, 3136, 1), (64, 4, 384, 784, 1)]  # Bt, K, D, L, N


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    x = torch.empty(2 * 1024**3 // 4, device="cuda", dtype=torch.float32).uniform_()
    y = torch.empty_like(x)
    ms = common.kernel_stats(lambda: y.copy_(x), warmup=50, rep=200).median
    return 2 * x.numel() * 4 / (ms * 1e-3)


def mamba_scan_fn():
    """mamba-ssm's compiled selective scan wrapped in an autograd.Function, or ``None``."""
    try:
        import selective_scan_cuda as ssc
    except Exception:
        return None

    class _Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, delta, A, B, C, D, delta_bias, softplus):
            out, x, *_ = ssc.fwd(u, delta, A, B, C, D, None, delta_bias, softplus)
            ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, x)
            ctx.softplus = softplus
            return out

        @staticmethod
        def backward(ctx, dout):
            u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
            du, dd, dA, dB, dC, dD, dbias, *_ = ssc.bwd(
                u, delta, A, B, C, D, None, delta_bias, dout.contiguous(), x, None, None, ctx.softplus, False
            )
            return du, dd, dA, dB, dC, dD, dbias, None

    return lambda u, d, A, B, C, D, bias: _Fn.apply(u, d, A, B, C, D, bias, True)


def make_inputs(Bt, K, Dm, L, N, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    dev = "cuda"

    def rn(*s, scale=1.0, dt=dtype):
        return (torch.randn(*s, device=dev, generator=g) * scale).to(dt)

    return dict(
        x=rn(Bt, Dm, L), delta=rn(Bt, K, Dm, L, scale=0.5), A=-torch.rand(K * Dm, N, device=dev, generator=g) - 0.1,
        B=rn(Bt, K, N, L), C=rn(Bt, K, N, L), D=torch.randn(K * Dm, device=dev, generator=g),
        bias=torch.rand(K * Dm, device=dev, generator=g) - 2.0,
    )


def bench_stats(fn, grad: bool, tensors: list[torch.Tensor]) -> common.Stats:
    """GPU time of ``fn()`` (forward) or of forward + backward (gradients of ``tensors``)."""
    if not grad:
        with torch.no_grad():
            return common.kernel_stats(fn)
    for t in tensors:
        t.requires_grad_(True)
    out = fn()
    gout = torch.randn_like(out)

    def step():
        fn().backward(gout)

    try:
        return common.kernel_stats(step, grad_to_none=tensors)
    finally:
        for t in tensors:
            t.requires_grad_(False)
            t.grad = None


def bench(fn, grad: bool, tensors: list[torch.Tensor]) -> float:
    """Median ms of :func:`bench_stats`."""
    return bench_stats(fn, grad, tensors).median


def _time_impls(impls: dict, args: list, row: dict) -> None:
    for name, fn in impls.items():
        for grad in (False, True):
            key = f"{name}_{'fwdbwd' if grad else 'fwd'}_ms"
            try:
                st = bench_stats(fn, grad, args)
            except Exception as e:  # OOM or a missing backend: report, keep going
                st = common.Stats.failed()
                print(f"  {name} {'fwd+bwd' if grad else 'fwd'} {row['shape']}: {type(e).__name__}: {e}"[:200])
            row[key], row[key.replace("_ms", "_spread")] = st.median, st.spread
            torch.cuda.empty_cache()


def _routed_inputs(inp, K):
    Bt, Dm, L = inp["x"].shape
    u = inp["x"].repeat(1, K, 1).contiguous()  # routed copies, as the 1-D op receives them
    d = inp["delta"].reshape(Bt, K * Dm, L).contiguous()
    return u, d


def scan_row(Bt, K, Dm, L, N, dtype, bw, mamba) -> dict:
    from vision_ssm.ops import selective_scan

    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    u, d = _routed_inputs(inp, K)
    B, C, A, D, bias = inp["B"], inp["C"], inp["A"], inp["D"], inp["bias"]
    floor_bytes = 3 * u.numel() * u.element_size() + 2 * B.numel() * B.element_size()
    row = {"shape": (Bt, K * Dm, L, N), "floor_fwd_ms": floor_bytes / bw * 1e3}
    impls = {
        "triton": lambda: selective_scan(u, d, A, B, C, D, None, bias, True, backend="triton"),
        "chunked": lambda: selective_scan(u, d, A, B, C, D, None, bias, True, backend="chunked"),
    }
    if mamba is not None:
        impls["mamba_ssm"] = lambda: mamba(u, d, A, B, C, D, bias)
    _time_impls(impls, [u, d, A, B, C, D, bias], row)
    return row


def scan_table(dtype, bw, results):
    mamba = mamba_scan_fn()
    rows = []
    for shape in SHAPES:
        rows.append(scan_row(*shape, dtype, bw, mamba))
        torch.cuda.empty_cache()
    results["selective_scan"] = rows
    nan = float("nan")
    print(f"\nselective_scan, {dtype} inputs, fp32 state (ms, median)")
    print("shape (B, K*D, L, N) | triton fwd | mamba fwd | chunked fwd | floor fwd | triton f+b | mamba f+b | "
          "chunked f+b | mamba/triton fwd | mamba/triton f+b")
    for r in rows:
        m_f, m_b = r.get("mamba_ssm_fwd_ms", nan), r.get("mamba_ssm_fwdbwd_ms", nan)
        print(" | ".join([str(r["shape"]), f"{r['triton_fwd_ms']:.3f}", f"{m_f:.3f}", f"{r['chunked_fwd_ms']:.3f}",
                          f"{r['floor_fwd_ms']:.3f}", f"{r['triton_fwdbwd_ms']:.3f}", f"{m_b:.3f}",
                          f"{r['chunked_fwdbwd_ms']:.3f}", f"{m_f / r['triton_fwd_ms']:.2f}x",
                          f"{m_b / r['triton_fwdbwd_ms']:.2f}x"]))


def channel_last_copies(x, d, B, C):
    """The same values laid out channel-last, as the SS2D layer hands them to the fused core on CUDA:
    ``x`` ``(Bt, D, L)``, ``d`` ``(Bt, K, D, L)``, ``B``/``C`` ``(Bt, K, N, L)``, unit channel/state stride."""
    return (x.transpose(1, 2).contiguous().transpose(1, 2), d.permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2),
            *(M.transpose(2, 3).contiguous().transpose(2, 3) for M in (B, C)))


OFFICIAL_ROUTE: tuple | None = None  # (cross_scan_fn, cross_merge_fn) of the official VMamba code, when given


def check_official_route(cross_scan, cross_merge, dirs, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise unless ``cross_scan`` / ``cross_merge`` compute ``dirs``' route and merge on these tensors.

    Args:
        cross_scan: ``(Bt, D, H, W)`` → ``(Bt, K, D, H*W)`` routed copies (VMamba's ``cross_scan_fn``).
        cross_merge: ``(Bt, K, D, H, W)`` → ``(Bt, D, H*W)`` (VMamba's ``cross_merge_fn``).
        dirs: this library's directions (``get_directions("sweep", H, W, 4, device)``).
        x: ``(Bt, D, L)`` pixel-domain input; y: ``(Bt, K, D, L)`` per-direction outputs.
    """
    from vision_ssm.ops import merge, route

    Bt, Dm, L = x.shape
    K, H, W = dirs.K, dirs.H, dirs.W
    ours = route(x.view(Bt, Dm, H, W), dirs)
    theirs = cross_scan(x.view(Bt, Dm, H, W)).reshape(Bt, K, Dm, L)
    merged = cross_merge(y.view(Bt, K, Dm, H, W)).reshape(Bt, Dm, L).float()
    want = merge(y.float(), dirs).reshape(Bt, Dm, L)
    # routing copies values (exact); merging sums K values in y's dtype, in any order (rounding only)
    bound = 2 * K * torch.finfo(y.dtype).eps * y.float().abs().sum(1).amax()
    if not torch.equal(theirs, ours) or (merged - want).abs().amax() > bound:
        raise RuntimeError("the official cross-scan / cross-merge do not compute the K = 4 sweep route / merge "
                           "of this library: the SS2D rows would not time the same work")


def ss2d_row(Bt, K, Dm, L, N, dtype, bw, mamba) -> dict:
    from vision_ssm.ops import get_directions, selective_scan, ss2d_scan
    from vision_ssm.ops.geometry.route import gather_directions, merge

    H = W = int(math.isqrt(L))
    dirs = get_directions("sweep", H, W, K, "cuda")
    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    x, d, A, B, C, D, bias = (inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias"))

    def routed(scan):
        xs = gather_directions(x.unsqueeze(1).expand(Bt, K, Dm, L), dirs).reshape(Bt, K * Dm, L)
        ds = gather_directions(d, dirs).reshape(Bt, K * Dm, L)
        ys = scan(xs, ds, gather_directions(B, dirs), gather_directions(C, dirs))
        return merge(ys.view(Bt, K, Dm, L), dirs).reshape(Bt, Dm, L)

    x_cl, d_cl, B_cl, C_cl = channel_last_copies(x, d, B, C)
    impls = {
        "fused": lambda: ss2d_scan(x, d, A, B, C, D, bias, dirs, True, backend="triton"),
        "fused_cl": lambda: ss2d_scan(x_cl, d_cl, A, B_cl, C_cl, D, bias, dirs, True, backend="triton"),
        "routed_triton": lambda: routed(
            lambda xs, ds, Bs, Cs: selective_scan(xs, ds, A, Bs, Cs, D, None, bias, True, backend="triton")
        ),
    }
    if mamba is not None:
        impls["routed_mamba"] = lambda: routed(lambda xs, ds, Bs, Cs: mamba(xs, ds, A, Bs, Cs, D, bias))
    if mamba is not None and OFFICIAL_ROUTE is not None and K == 4:
        cross_scan, cross_merge = OFFICIAL_ROUTE
        check_official_route(cross_scan, cross_merge, dirs, x, torch.randn_like(d))

        def official():
            xs = cross_scan(x.view(Bt, Dm, H, W)).view(Bt, K * Dm, L)
            ys = mamba(xs, d.view(Bt, K * Dm, L), A, B, C, D, bias)
            return cross_merge(ys.view(Bt, K, Dm, H, W))

        impls["official"] = official
    floor_bytes = 2 * x.numel() * x.element_size() + d.numel() * d.element_size() + 2 * B.numel() * B.element_size()
    row = {"shape": (Bt, K * Dm, L, N), "floor_fwd_ms": floor_bytes / bw * 1e3}
    _time_impls({k: v for k, v in impls.items() if k != "fused_cl"}, [x, d, A, B, C, D, bias], row)
    _time_impls({"fused_cl": impls["fused_cl"]}, [x_cl, d_cl, A, B_cl, C_cl, D, bias], row)
    return row


def ss2d_table(dtype, bw, results):
    mamba = mamba_scan_fn()
    rows = []
    for shape in SHAPES:
        rows.append(ss2d_row(*shape, dtype, bw, mamba))
        torch.cuda.empty_cache()
    results["ss2d"] = rows
    nan = float("nan")
    print(f"\nSS2D core (K=4 sweep, pixel domain in/out), {dtype} inputs (ms, median); fused: channel-first "
          "inputs, fused_cl: channel-last inputs (the SS2D layer's layout on CUDA)")
    print("shape | fused fwd | fused_cl fwd | routed+mamba fwd | routed+triton fwd | floor fwd | fused_cl/floor | "
          "fused f+b | fused_cl f+b | routed+mamba f+b | routed+triton f+b | mamba/fused(_cl) fwd | "
          "mamba/fused(_cl) f+b")
    for r in rows:
        m_f, m_b = r.get("routed_mamba_fwd_ms", nan), r.get("routed_mamba_fwdbwd_ms", nan)
        f, fc, fb, fcb = r["fused_fwd_ms"], r["fused_cl_fwd_ms"], r["fused_fwdbwd_ms"], r["fused_cl_fwdbwd_ms"]
        print(" | ".join([str(r["shape"]), f"{f:.3f}", f"{fc:.3f}", f"{m_f:.3f}", f"{r['routed_triton_fwd_ms']:.3f}",
                          f"{r['floor_fwd_ms']:.3f}", f"{fc / r['floor_fwd_ms']:.2f}x", f"{fb:.3f}", f"{fcb:.3f}",
                          f"{m_b:.3f}", f"{r['routed_triton_fwdbwd_ms']:.3f}", f"{m_f / f:.2f}x ({m_f / fc:.2f}x)",
                          f"{m_b / fb:.2f}x ({m_b / fcb:.2f}x)"]))
    if any("official_fwd_ms" in r for r in rows):
        print("\nagainst the official pipeline (VMamba's cross-scan + mamba-ssm + VMamba's cross-merge), ms")
        print("shape | official fwd | fused_cl fwd | official/fused_cl fwd | official f+b | fused_cl f+b | "
              "official/fused_cl f+b")
        for r in rows:
            o_f, o_b = r.get("official_fwd_ms", nan), r.get("official_fwdbwd_ms", nan)
            fc, fcb = r["fused_cl_fwd_ms"], r["fused_cl_fwdbwd_ms"]
            print(" | ".join([str(r["shape"]), f"{o_f:.3f}", f"{fc:.3f}", f"{o_f / fc:.2f}x", f"{o_b:.3f}",
                              f"{fcb:.3f}", f"{o_b / fcb:.2f}x"]))


def _tune_configs(N: int, channels_last: bool) -> list[dict]:
    """Tile configurations to time: ``T`` steps x ``BD`` channels x warps (see ``pick_config``)."""
    if N <= 2:
        grid = [dict(T=T, BD=bd, nw=bd // 32) for T in (8, 16, 32) for bd in (32, 64)]
    else:
        grid = [dict(T=T, BD=bd, nw=nw) for T, bd, nw in
                [(4, 8, 1), (8, 8, 1), (16, 8, 1), (8, 4, 1), (8, 16, 1), (4, 16, 1), (2, 16, 1), (4, 32, 1),
                 (8, 2, 1)]]
    if channels_last:
        grid = [dict(c, ksplit=ks) for c in grid for ks in (0, 1)]
    return grid


def tune_shape(Bt, K, Dm, L, N, dtype, fused: bool) -> list[dict]:
    """Time the triton kernels (forward alone; forward + backward) over ``_tune_configs``."""
    from vision_ssm.ops import get_directions, selective_scan, ss2d_scan
    from vision_ssm.ops.triton._launch import config_override, pick_config

    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    if fused:
        dirs = get_directions("sweep", int(math.isqrt(L)), int(math.isqrt(L)), K, "cuda")
        args = [inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias")]

        def fn():
            return ss2d_scan(*args, dirs, True, backend="triton")
    else:
        u, d = _routed_inputs(inp, K)
        args = [u, d] + [inp[k] for k in ("A", "B", "C", "D", "bias")]

        def fn():
            return selective_scan(*args[:5], args[5], None, args[6], True, backend="triton")

    out, seen = [], set()
    group = Dm  # the 1-D op gets G = K groups of Dm channels; the fused core one group per direction
    for c in _tune_configs(N, fused):
        ov = dict(T=c["T"], BD_fwd=c["BD"], BD_bwd=c["BD"], num_warps=c["nw"])
        if fused:
            ov["ksplit"] = c["ksplit"]
        with config_override(**ov):
            eff = (pick_config(N, L, group), c.get("ksplit"))
            if eff in seen:  # the group size or the lane rule reduced it to a configuration already timed
                continue
            seen.add(eff)
            try:
                f = bench(fn, False, [])
                fb = bench(fn, True, args)
            except Exception as e:
                print("tune fail", c, type(e).__name__, str(e)[:160], flush=True)
                continue
        out.append(dict(c, shape=(Bt, K * Dm, L, N), fused=fused, fwd=f, fwdbwd=fb))
        print(f"tune {'ss2d' if fused else 'scan'} {(Bt, K * Dm, L, N)} {c}: fwd {f:.3f} f+b {fb:.3f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--tune", default="", help="time tile configurations first: comma list of scan, ss2d")
    p.add_argument("--only", default="scan,ss2d", help="comma list of tables: scan, ss2d")
    p.add_argument("--shapes", default="0,1,2", help="comma list of indices into SHAPES")
    p.add_argument("--ksplit", default="auto", choices=["auto", "0", "1"],
                   help="fused SS2D: force one program per direction (1) or per all K directions (0)")
    p.add_argument("--official-vmamba", default=None, help="a clone of github.com/MzeroMiko/VMamba: add the official "
                   "cross-scan + mamba-ssm + cross-merge pipeline to the SS2D table")
    a = p.parse_args(argv)
    common.set_threads(a.threads)
    if a.official_vmamba:
        from benchmarks.official import official_route

        global OFFICIAL_ROUTE
        OFFICIAL_ROUTE = official_route(a.official_vmamba)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    SHAPES[:] = [SHAPES[int(i)] for i in a.shapes.split(",")]
    env = common.environment("cuda")
    bw = copy_bandwidth()
    results = {"copy_bandwidth_GBps": bw / 1e9, "dtype": a.dtype}
    common.print_header(env, f"selective_scan_cuda {'yes' if mamba_scan_fn() else 'no'}; "
                        f"copy bandwidth {bw / 1e9:.0f} GB/s")
    for kind in filter(None, a.tune.split(",")):
        results[f"tune_{kind}"] = [r for shape in SHAPES for r in tune_shape(*shape, dtype, kind == "ss2d")]
    only = a.only.split(",")
    if "scan" in only:
        scan_table(dtype, bw, results)
    if "ss2d" in only:
        from vision_ssm.ops.triton._launch import config_override

        with config_override(**({} if a.ksplit == "auto" else {"ksplit": int(a.ksplit)})):
            ss2d_table(dtype, bw, results)
    common.finish(a.json, env, results)


if __name__ == "__main__":
    main()

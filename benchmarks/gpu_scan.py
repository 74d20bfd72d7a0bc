"""GPU benchmark of the selective scan and the SS2D core: triton vs mamba-ssm vs chunked vs memory floor.

Run on a CUDA machine (mamba-ssm's ``selective_scan_cuda`` is used when it is importable)::

    python benchmarks/gpu_scan.py                  # both tables, bf16 inputs, fp32 state
    python benchmarks/gpu_scan.py --sweep          # also sweep the triton tile shapes
    python benchmarks/gpu_scan.py --json out.json  # also write every number

Shapes are the issue's (Bt, K·D, L, N): VMamba-T vanilla stage 1 (N=16), VMamba-T s1l8 stage 1
(N=1) and stage 2. The 1-D table times ``selective_scan`` on already-routed inputs with ``G = K``
groups (as VMamba calls it). The SS2D table times the whole core: pixel-domain inputs, K = 4
``sweep`` directions (VMamba's cross-scan), routed copies + scan + merge, against the fused
triton kernel. The memory floor is the bytes each op must move (inputs read once, output written
once) over the device-to-device copy bandwidth measured in the same run. Times are medians of
``triton.testing.do_bench``; fwd+bwd includes the backward of every differentiable input.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [(64, 4, 192, 3136, 16), (128, 4, 96, 3136, 1), (64, 4, 384, 784, 1)]  # Bt, K, D, L, N


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    from triton.testing import do_bench

    x = torch.empty(2 * 1024**3 // 4, device="cuda", dtype=torch.float32).uniform_()
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), warmup=50, rep=200, return_mode="median")
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


def bench(fn, grad: bool, tensors: list[torch.Tensor]):
    """Median ms of ``fn()`` (forward) or of forward + backward."""
    from triton.testing import do_bench

    if not grad:
        with torch.no_grad():
            return do_bench(fn, warmup=25, rep=200, return_mode="median")
    for t in tensors:
        t.requires_grad_(True)
    out = fn()
    gout = torch.randn_like(out)

    def step():
        fn().backward(gout)

    try:
        return do_bench(step, warmup=25, rep=200, grad_to_none=tensors, return_mode="median")
    finally:
        for t in tensors:
            t.requires_grad_(False)
            t.grad = None


def _time_impls(impls: dict, args: list, row: dict) -> None:
    for name, fn in impls.items():
        for grad in (False, True):
            key = f"{name}_{'fwdbwd' if grad else 'fwd'}_ms"
            try:
                row[key] = bench(fn, grad, args)
            except Exception as e:  # OOM or a missing backend: report, keep going
                row[key] = float("nan")
                print(f"  {name} {'fwd+bwd' if grad else 'fwd'} {row['shape']}: {type(e).__name__}: {e}"[:200])
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


def ss2d_row(Bt, K, Dm, L, N, dtype, bw, mamba) -> dict:
    from vision_ssm.ops import get_directions, selective_scan, ss2d_scan
    from vision_ssm.ops.route import gather_directions, merge

    H = W = int(math.isqrt(L))
    dirs = get_directions("sweep", H, W, K, "cuda")
    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    x, d, A, B, C, D, bias = (inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias"))

    def routed(scan):
        xs = gather_directions(x.unsqueeze(1).expand(Bt, K, Dm, L), dirs).reshape(Bt, K * Dm, L)
        ds = gather_directions(d, dirs).reshape(Bt, K * Dm, L)
        ys = scan(xs, ds, gather_directions(B, dirs), gather_directions(C, dirs))
        return merge(ys.view(Bt, K, Dm, L), dirs).reshape(Bt, Dm, L)

    impls = {
        "fused": lambda: ss2d_scan(x, d, A, B, C, D, bias, dirs, True, backend="triton"),
        "routed_triton": lambda: routed(
            lambda xs, ds, Bs, Cs: selective_scan(xs, ds, A, Bs, Cs, D, None, bias, True, backend="triton")
        ),
    }
    if mamba is not None:
        impls["routed_mamba"] = lambda: routed(lambda xs, ds, Bs, Cs: mamba(xs, ds, A, Bs, Cs, D, bias))
    floor_bytes = 2 * x.numel() * x.element_size() + d.numel() * d.element_size() + 2 * B.numel() * B.element_size()
    row = {"shape": (Bt, K * Dm, L, N), "floor_fwd_ms": floor_bytes / bw * 1e3}
    _time_impls(impls, [x, d, A, B, C, D, bias], row)
    return row


def ss2d_table(dtype, bw, results):
    mamba = mamba_scan_fn()
    rows = []
    for shape in SHAPES:
        rows.append(ss2d_row(*shape, dtype, bw, mamba))
        torch.cuda.empty_cache()
    results["ss2d"] = rows
    nan = float("nan")
    print(f"\nSS2D core (K=4 sweep, pixel domain in/out), {dtype} inputs (ms, median)")
    print("shape | fused fwd | routed+mamba fwd | routed+triton fwd | floor fwd | fused/floor | "
          "fused f+b | routed+mamba f+b | routed+triton f+b | mamba/fused fwd | mamba/fused f+b")
    for r in rows:
        m_f, m_b = r.get("routed_mamba_fwd_ms", nan), r.get("routed_mamba_fwdbwd_ms", nan)
        print(" | ".join([str(r["shape"]), f"{r['fused_fwd_ms']:.3f}", f"{m_f:.3f}", f"{r['routed_triton_fwd_ms']:.3f}",
                          f"{r['floor_fwd_ms']:.3f}", f"{r['fused_fwd_ms'] / r['floor_fwd_ms']:.2f}x",
                          f"{r['fused_fwdbwd_ms']:.3f}", f"{m_b:.3f}", f"{r['routed_triton_fwdbwd_ms']:.3f}",
                          f"{m_f / r['fused_fwd_ms']:.2f}x", f"{m_b / r['fused_fwdbwd_ms']:.2f}x"]))


def sweep_shape(Bt, K, Dm, L, N, dtype) -> list[dict]:
    from vision_ssm.ops import selective_scan
    from vision_ssm.ops.triton._launch import config_override

    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    u, d = _routed_inputs(inp, K)
    B, C, A, D, bias = inp["B"], inp["C"], inp["A"], inp["D"], inp["bias"]

    def fn():
        return selective_scan(u, d, A, B, C, D, None, bias, True, backend="triton")

    out = []
    Ts = (64, 128, 256) if N <= 2 else (32, 64)
    bds = (8, 16, 32) if N <= 2 else (1, 2, 4)
    for T in Ts:
        for bd in bds:
            for nw in (4, 8):
                with config_override(T=T, BD_fwd=bd, BD_bwd=max(1, bd // 2), num_warps=nw):
                    try:
                        f = bench(fn, False, [])
                        fb = bench(fn, True, [u, d, A, B, C, D, bias])
                    except Exception as e:
                        print("sweep fail", T, bd, nw, type(e).__name__, str(e)[:100])
                        continue
                out.append({"shape": (Bt, K * Dm, L, N), "T": T, "BD": bd, "nw": nw, "fwd": f, "fwdbwd": fb})
                print(f"sweep {(Bt, K * Dm, L, N)} T={T} BD={bd} nw={nw}: fwd {f:.3f} f+b {fb:.3f}", flush=True)
    return out


def sweep_ss2d_shape(Bt, K, Dm, L, N, dtype) -> list[dict]:
    from vision_ssm.ops import get_directions, ss2d_scan
    from vision_ssm.ops.triton._launch import config_override

    H = W = int(math.isqrt(L))
    dirs = get_directions("sweep", H, W, K, "cuda")
    inp = make_inputs(Bt, K, Dm, L, N, dtype)
    args = [inp[k] for k in ("x", "delta", "A", "B", "C", "D", "bias")]

    def fn():
        return ss2d_scan(*args, dirs, True, backend="triton")

    out = []
    grid = [(T, bd, nw) for T in (32, 64) for bd in (8, 16, 32) for nw in (1, 2, 4)] if N <= 2 else \
        [(T, bd, nw) for T in (16, 32) for bd in (2, 4, 8) for nw in (1, 2, 4)]
    for T, bd, nw in grid:
        with config_override(T=T, BD_fwd=bd, BD_bwd=bd if N > 2 else max(1, bd // 2), num_warps=nw):
            try:
                f = bench(fn, False, [])
                fb = bench(fn, True, args)
            except Exception as e:
                print("sweep-ss2d fail", T, bd, nw, type(e).__name__, str(e)[:100])
                continue
        out.append({"shape": (Bt, K * Dm, L, N), "T": T, "BD": bd, "nw": nw, "fwd": f, "fwdbwd": fb})
        print(f"sweep-ss2d {(Bt, K * Dm, L, N)} T={T} BD={bd} nw={nw}: fwd {f:.3f} f+b {fb:.3f}", flush=True)
    return out


def sweep(dtype, results):
    """Time the triton scan over tile shapes (T, BD_fwd, BD_bwd = BD_fwd/2, num_warps) for each shape."""
    results["sweep"] = [r for shape in SHAPES for r in sweep_shape(*shape, dtype)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--sweep", action="store_true", help="also sweep triton tile shapes")
    p.add_argument("--sweep-ss2d", default="", help="comma list of shape indices to sweep the fused SS2D tiles on")
    p.add_argument("--only", default="scan,ss2d", help="comma list of tables: scan, ss2d")
    p.add_argument("--shapes", default="0,1,2", help="comma list of indices into SHAPES")
    p.add_argument("--ksplit", default="auto", choices=["auto", "0", "1"],
                   help="fused SS2D: force one program per direction (1) or per all K directions (0)")
    p.add_argument("--json", default=None, help="write all numbers to this file")
    a = p.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    SHAPES[:] = [SHAPES[int(i)] for i in a.shapes.split(",")]
    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    import triton

    results["triton"] = triton.__version__
    bw = copy_bandwidth()
    results["copy_bandwidth_GBps"] = bw / 1e9
    print(f"{results['gpu']}, torch {torch.__version__}, triton {triton.__version__}, "
          f"mamba-ssm {'yes' if mamba_scan_fn() else 'no'}; copy bandwidth {bw / 1e9:.0f} GB/s")
    if a.sweep:
        sweep(dtype, results)
    if a.sweep_ss2d:
        results["sweep_ss2d"] = [r for i in a.sweep_ss2d.split(",") for r in sweep_ss2d_shape(*SHAPES[int(i)], dtype)]
    only = a.only.split(",")
    if "scan" in only:
        scan_table(dtype, bw, results)
    if "ss2d" in only:
        from vision_ssm.ops.triton._launch import config_override

        with config_override(**({} if a.ksplit == "auto" else {"ksplit": int(a.ksplit)})):
            ss2d_table(dtype, bw, results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

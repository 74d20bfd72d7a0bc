"""GPU model throughput: vision_ssm models (triton backend by default) next to timm's convnext_tiny.

Run on a CUDA machine, from the repository root::

    python -m benchmarks.gpu_models                               # default models, triton backend
    python -m benchmarks.gpu_models --backends triton,mamba_ssm   # also with mamba-ssm's kernel
    python -m benchmarks.gpu_models --json out.json
    python -m benchmarks.gpu_models --compile none,default        # eager and torch.compile'd
    python -m benchmarks.gpu_models --models vmamba_tiny_s1l8,mambavision_tiny \
        --official-vmamba ~/src/VMamba --official-mambavision ~/src/MambaVision   # side by side

For every model: inference throughput (batch 128, ``torch.inference_mode``), training throughput
(batch 64: forward, cross-entropy, backward, AdamW step) and training peak memory, at 224×224
with bf16 autocast, fp32 weights, channels-first memory (``--channels-last 0,1`` also times model
and input in ``torch.channels_last`` memory, as timm's ``benchmark.py --channels-last``). Random
inputs and labels; no weights are loaded. ``--compile`` also times the model wrapped in
``torch.compile`` (``default``, ``max-autotune-no-cudagraphs``, ``reduce-overhead`` = CUDA graphs;
the scan is the opaque ``vision_ssm::`` custom op, everything around it is compiled); the
compilation happens in the warm-up, outside the timed windows, and its time is printed.
Each number is the median over ``--windows`` timed windows of ``--iters`` steps after warm-up
(CUDA events; :func:`benchmarks.common.measure`); ``--json`` also stores the spread.

With ``--official-vmamba`` / ``--official-mambavision`` (your clones of the official repositories; see
:mod:`benchmarks.official`) every model with an official counterpart is timed side by side with it: both
models built in the same process, the same random inputs, the same autocast and AdamW step, and their
timed windows alternating (ours, official, ours, ...), so a clock or load change hits both alike. The
ratio ours / official is printed; the JSON rows carry both. Training memory of a pair is reported as
the peak *above* what was resident before the step (``train_peak_extra_GB``: activations, gradients,
temporaries), since both models' weights and optimizer states share the device.
"""
from __future__ import annotations

import contextlib

import torch

from benchmarks import common

DEFAULT_MODELS = "vmamba_tiny_s1l8,vmamba_tiny,mambavision_tiny,convnext_tiny"


def _stats(step, warmup: int, iters: int, windows: int = 3) -> common.Stats:
    return common.measure({"step": step}, warmup=warmup, windows=windows, iters=iters, device="cuda")["step"]


def _infer_ms(model, bs: int, img: int, warmup: int, iters: int, mf=torch.contiguous_format,
              windows: int = 3) -> common.Stats:
    return _stats(infer_step(model, bs, img, mf), warmup, iters, windows)


def train_step(model, bs: int, img: int, mf=torch.contiguous_format, params_of=None):
    """One closure = one bf16-autocast training step (forward, cross-entropy, backward, AdamW) on
    fixed random data; also used by the experiments (``profile_model``, ``step_counts``, ...).
    ``params_of``: the module whose parameters AdamW updates (default ``model``; the eager module
    when ``model`` is compiled)."""
    model.train()
    opt = torch.optim.AdamW((params_of or model).parameters(), lr=1e-4)
    x = torch.randn(bs, 3, img, img, device="cuda").contiguous(memory_format=mf)
    y = torch.randint(0, 1000, (bs,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _train_ms(model, bs: int, img: int, warmup: int, iters: int, mf=torch.contiguous_format,
              params_of=None, windows: int = 3) -> common.Stats:
    step = train_step(model, bs, img, mf, params_of)
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return _stats(step, warmup, iters, windows)


def infer_step(model, bs: int, img: int, mf=torch.contiguous_format):
    """One closure = one bf16-autocast inference step (``torch.inference_mode``) on fixed random input."""
    model.eval()
    x = torch.randn(bs, 3, img, img, device="cuda").contiguous(memory_format=mf)

    def step():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(x)

    return step


def _peak_extra_GB(step) -> float:
    """Peak memory of one more call of ``step`` above what is allocated before it."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 1e9


def bench_pair(name: str, official, infer_bs: int, train_bs: int, img: int, warmup: int, iters: int,
               channels_last: bool = False, compile_mode: str = "none", windows: int = 5) -> list[dict]:
    """Our ``name`` and its official counterpart (``official``: ``(constructor, label)`` from
    :func:`benchmarks.official.official_builder`) timed in alternating windows; one row each."""
    import time

    import timm

    import vision_ssm  # noqa: F401  (registers the models)

    build, label = official
    mf = torch.channels_last if channels_last else torch.contiguous_format
    models = {"ours": timm.create_model(name, pretrained=False, num_classes=1000), "official": build()}
    rows, runs = {}, {}
    for k, m in models.items():
        m.cuda().to(memory_format=mf)
        rows[k] = {"model": name if k == "ours" else label, "params_M": sum(p.numel() for p in m.parameters()) / 1e6,
                   "channels_last": channels_last, "compile": compile_mode}
        runs[k] = m
        if compile_mode != "none":
            torch._dynamo.reset()
            runs[k] = torch.compile(m, mode=compile_mode)
    t0 = time.perf_counter()
    # training first: tensors cached under inference_mode must not leak into autograd
    train = {k: train_step(runs[k], train_bs, img, mf, models[k]) for k in models}
    for k, step in train.items():
        for _ in range(2):  # compile / autotune, optimizer state
            step()
        rows[k]["train_peak_extra_GB"] = _peak_extra_GB(step)
    st = common.measure(train, warmup=warmup, windows=windows, iters=iters, device="cuda")
    for k in models:
        rows[k]["train_img_s"], rows[k]["train_spread"] = train_bs / st[k].median * 1e3, st[k].spread
    del train
    torch.cuda.empty_cache()
    infer = {k: infer_step(runs[k], infer_bs, img, mf) for k in models}
    st = common.measure(infer, warmup=warmup, windows=windows, iters=iters, device="cuda")
    for k in models:
        rows[k]["infer_img_s"], rows[k]["infer_spread"] = infer_bs / st[k].median * 1e3, st[k].spread
        rows[k]["wall_s"] = time.perf_counter() - t0
    for key in ("train_img_s", "infer_img_s"):
        rows["ours"][key.replace("img_s", "ratio_vs_official")] = rows["ours"][key] / rows["official"][key]
    del models, runs
    torch.cuda.empty_cache()
    return [rows["ours"], rows["official"]]


def bench_model(name: str, infer_bs: int, train_bs: int, img: int, warmup: int, iters: int,
                channels_last: bool = False, compile_mode: str = "none", windows: int = 3) -> dict:
    import time

    import timm

    import vision_ssm  # noqa: F401  (registers the models)

    mf = torch.channels_last if channels_last else torch.contiguous_format
    model = timm.create_model(name, pretrained=False, num_classes=1000).cuda().to(memory_format=mf)
    row: dict = {"model": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                 "channels_last": channels_last, "compile": compile_mode}
    run = model
    if compile_mode != "none":
        torch._dynamo.reset()
        run = torch.compile(model, mode=compile_mode)
    t0 = time.perf_counter()
    # training first: tensors cached under inference_mode must not leak into autograd
    train = _train_ms(run, train_bs, img, warmup, iters, mf, model, windows)
    row["train_img_s"], row["train_spread"] = train_bs / train.median * 1e3, train.spread
    row["train_peak_GB"] = torch.cuda.max_memory_allocated() / 1e9
    torch.cuda.empty_cache()
    infer = _infer_ms(run, infer_bs, img, warmup, iters, mf, windows)
    row["infer_img_s"], row["infer_spread"] = infer_bs / infer.median * 1e3, infer.spread
    row["wall_s"] = time.perf_counter() - t0
    del model
    torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--backends", default="triton", help="selective-scan backends for vision_ssm models")
    p.add_argument("--infer-bs", type=int, default=128)
    p.add_argument("--train-bs", type=int, default=64)
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=10, help="steps per timed window")
    p.add_argument("--windows", type=int, default=3, help="timed windows (median reported)")
    p.add_argument("--channels-last", default="0", help="comma list of 0/1: model and input in channels_last "
                   "memory (as timm's benchmark.py --channels-last); e.g. 0,1 runs both")
    p.add_argument("--compile", default="none", help="comma list of torch.compile modes to time: none (eager), "
                   "default, max-autotune-no-cudagraphs, reduce-overhead")
    p.add_argument("--official-vmamba", default=None, help="a clone of github.com/MzeroMiko/VMamba: time the "
                   "official model beside ours (alternating windows)")
    p.add_argument("--official-mambavision", default=None, help="a clone of github.com/NVlabs/MambaVision: likewise")
    a = p.parse_args(argv)
    common.set_threads(a.threads)
    from benchmarks.official import official_builder
    from vision_ssm.ops import use_backend

    roots = {"vmamba": a.official_vmamba, "mambavision": a.official_mambavision}

    torch.backends.cudnn.benchmark = True
    env = common.environment("cuda")
    common.print_header(env, f"bf16 autocast, {a.img}px, inference bs{a.infer_bs}, training bs{a.train_bs}")
    rows = []
    for name in a.models.split(","):
        ours = not name.startswith("convnext")
        for backend, cl, mode in [(b, c, m) for b in (a.backends.split(",") if ours else ["-"])
                                  for c in map(int, a.channels_last.split(",")) for m in a.compile.split(",")]:
            ctx = use_backend(backend) if ours else contextlib.nullcontext()
            try:
                official = official_builder(name, roots) if ours else None
                with ctx:
                    if official is None:
                        new = [bench_model(name, a.infer_bs, a.train_bs, a.img, a.warmup, a.iters, bool(cl), mode,
                                           a.windows)]
                    else:
                        new = bench_pair(name, official, a.infer_bs, a.train_bs, a.img, a.warmup, a.iters, bool(cl),
                                         mode, a.windows)
            except Exception as e:  # unregistered model, missing backend, OOM: report and go on
                print(f"{name} [{backend}]: {type(e).__name__}: {str(e)[:300]}")
                torch.cuda.empty_cache()
                continue
            for i, row in enumerate(new):
                row["backend"] = backend if i == 0 else "official"
                rows.append(row)
                _print_row(row, cl, mode)
    common.finish(a.json, env, rows)


def _print_row(row: dict, cl: int, mode: str) -> None:
    mem = (f"train peak {row['train_peak_GB']:5.2f} GB" if "train_peak_GB" in row
           else f"train peak +{row['train_peak_extra_GB']:5.2f} GB")
    ratio = (f" | ours/official: inference {row['infer_ratio_vs_official']:.2f}x, training "
             f"{row['train_ratio_vs_official']:.2f}x" if "infer_ratio_vs_official" in row else "")
    print(f"{row['model'][:36]:36s} {row['backend']:9s} {'NHWC' if cl else 'NCHW'} {mode:9s} "
          f"params {row['params_M']:6.1f}M | inference {row['infer_img_s']:7.0f} img/s "
          f"(±{50 * row['infer_spread']:.0f}%) | training {row['train_img_s']:6.0f} img/s "
          f"(±{50 * row['train_spread']:.0f}%) | {mem} | {row['wall_s']:.0f} s{ratio}", flush=True)


if __name__ == "__main__":
    main()

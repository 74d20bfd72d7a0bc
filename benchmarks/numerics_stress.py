"""Numerics under stress: many mixed-precision training steps at large learning rates, checked for NaN/Inf.

A small model (default ``test_vmamba`` and ``test_mambavision``) is trained on a fixed pool of random
images with random labels (so the loss keeps pushing the weights) with AdamW at a learning rate 10-50×
the usual one, under ``torch.autocast`` (bfloat16 on CPU; float16 with a ``GradScaler`` on CUDA), no
gradient clipping. After every step the loss, every gradient and every parameter are checked to be
finite; the run reports the first step where one is not (``None``: none), the loss range and the
largest parameter magnitude reached.

``tests/models/test_numerics_stress.py`` runs 100 steps of it in CI (and the float16 variant on GPU);
this script runs the full 1,000.

Usage (from the repository root)::

    python -m benchmarks.numerics_stress [--models test_vmamba test_mambavision] [--steps 1000]
        [--lr 0.02] [--device cpu|cuda] [--dtype bf16|fp16] [--backend NAME] [--threads N] [--json PATH]

``--dtype fp16`` on CPU runs float16 autocast with a CPU ``GradScaler``, as on CUDA.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks import common
from vision_ssm.ops import use_backend

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StressResult:
    """Outcome of :func:`stress_train`.

    Attributes:
        steps: Steps run (fewer than asked when a non-finite value stopped the run).
        first_nonfinite: ``(step, what)`` of the first NaN/Inf in the loss, a gradient or a parameter,
            or ``None``. With a ``GradScaler``, steps it skipped for overflowing float16 gradients are
            not failures (that is its job); only a non-finite loss or parameter is.
        loss_first: Mean loss of the first 10 steps.
        loss_last: Mean loss of the last 10 steps.
        max_param_abs: Largest parameter magnitude at the end.
        skipped_steps: Steps the ``GradScaler`` skipped (0 without one).
        seconds: Wall time of the run.
    """

    steps: int
    first_nonfinite: tuple[int, str] | None
    loss_first: float
    loss_last: float
    max_param_abs: float
    skipped_steps: int
    seconds: float


def stress_train(name: str, steps: int, lr: float = 0.02, *, device: str = "cpu", dtype: torch.dtype | None = None,
                 batch: int = 4, size: int = 32, pool: int = 16, seed: int = 0) -> StressResult:
    """Train ``name`` for ``steps`` AdamW steps under autocast and check every value for NaN/Inf.

    Args:
        name: A registered model name.
        steps: Optimizer steps.
        lr: AdamW learning rate (weight decay 0.05, no gradient clipping).
        device: ``"cpu"`` or ``"cuda"``.
        dtype: Autocast dtype; default bfloat16 on CPU, float16 on CUDA (float16 gets a ``GradScaler``).
        batch: Images per step, ``(batch, 3, size, size)``, drawn from a fixed pool of ``pool`` random
            images with random labels among 10 classes.
        size: Image side.
        pool: Size of the image pool.
        seed: Seed of the model, the pool and the batches.
    """
    dtype = dtype or (torch.bfloat16 if device == "cpu" else torch.float16)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=10).to(device).train()
    images = torch.randn(pool, 3, size, size, generator=gen).to(device)
    labels = torch.randint(0, 10, (pool,), generator=gen).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device) if dtype == torch.float16 else None
    params = [p for p in model.parameters() if p.requires_grad]
    first_bad, losses, skipped = None, [], 0
    t0 = time.perf_counter()
    step = 0
    for step in range(1, steps + 1):
        idx = torch.randint(0, pool, (batch,), generator=gen).to(device)
        with torch.autocast(device, dtype=dtype):
            loss = F.cross_entropy(model(images[idx]), labels[idx])
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            first_bad = (step, "loss")
            break
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scale = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            skipped += int(scaler.get_scale() < scale)  # an overflow: the step was skipped
        else:
            loss.backward()
            bad = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
            if bad:
                first_bad = (step, f"gradient of {bad[0]}")
                break
            opt.step()
        bad = [n for n, p in model.named_parameters() if not p.isfinite().all()]
        if bad:
            first_bad = (step, f"parameter {bad[0]}")
            break
    max_abs = max(float(p.detach().abs().max()) for p in params)
    head, tail = losses[:10], losses[-10:]
    return StressResult(step, first_bad, sum(head) / len(head), sum(tail) / len(tail), max_abs, skipped,
                        time.perf_counter() - t0)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--models", nargs="+", default=["test_vmamba", "test_mambavision"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default=None,
                   help="autocast dtype (default: bf16 on CPU, fp16 with a GradScaler on CUDA)")
    p.add_argument("--backend", default=None, help="selective-scan backend (default: automatic)")
    args = p.parse_args()
    common.set_threads(args.threads)
    env = common.environment(args.device)
    dtype = _DTYPES[args.dtype] if args.dtype else None
    what = args.dtype or ("bf16" if args.device == "cpu" else "fp16")
    common.print_header(env, f"{args.steps} steps, AdamW lr {args.lr}, {what} autocast on {args.device}, "
                             f"backend {args.backend or 'automatic'}")
    results = {}
    for name in args.models:
        with use_backend(args.backend):
            r = stress_train(name, args.steps, args.lr, device=args.device, dtype=dtype)
        results[name] = r.__dict__
        print(f"{name:18s} steps {r.steps}  first non-finite {r.first_nonfinite}  loss {r.loss_first:.3f} -> "
              f"{r.loss_last:.3f}  max |param| {r.max_param_abs:.3g}  skipped {r.skipped_steps}  "
              f"{r.seconds:.0f} s", flush=True)
    common.finish(args.json, env, results)


if __name__ == "__main__":
    main()

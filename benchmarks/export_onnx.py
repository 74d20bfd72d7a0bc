"""ONNX export of a model through :func:`vision_ssm.tasks.export.export_onnx`, run in onnxruntime (CPU).

Prints, for one model at one input size (default ``vmamba_tiny_s1l8``, ``(1, 3, 224, 224)``):

- the export time (wall, and this process's CPU time, which a busy shared machine inflates less);
- the file size (the ``.onnx`` file and any ``.data`` side file) against the bytes of the model's
  parameters and buffers;
- the largest difference between the onnxruntime output and eager PyTorch;
- the latency of onnxruntime against eager PyTorch with the automatic backend (numba when installed)
  and with ``chunked``, run alternately in the same windows, and their ratio (< 1: onnxruntime is
  faster). Nothing is asserted: the numbers are measured and printed.

Usage (from the repository root)::

    python -m benchmarks.export_onnx [--model vmamba_tiny_s1l8] [--size 224] [--batch 1] [--windows 5]
        [--threads N] [--out DIR] [--json PATH]
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks import common
from vision_ssm.ops import use_backend
from vision_ssm.tasks.export import export_onnx, onnx_max_abs_diff, onnxruntime_session


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--model", default="vmamba_tiny_s1l8")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--out", default=None, help="folder for the .onnx file (default: a temporary folder)")
    args = p.parse_args()
    common.set_threads(args.threads)
    env = common.environment()
    common.print_header(env, f"{args.model} ({args.batch}, 3, {args.size}, {args.size})")
    torch.manual_seed(0)
    model = timm.create_model(args.model).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        r = export_onnx(model, x, out / f"{args.model}.onnx")
        print(f"export: {r.seconds:.1f} s wall, {r.cpu_seconds:.1f} s CPU; file {r.file_bytes / 1e6:.1f} MB "
              f"for {r.parameter_bytes / 1e6:.1f} MB of parameters and buffers (x{r.size_ratio:.3f}); "
              f"files: {', '.join(f.name for f in r.files)}", flush=True)
        session = onnxruntime_session(r.path, threads=args.threads or torch.get_num_threads())
        diff = onnx_max_abs_diff(session, model, x)
        print(f"max |onnxruntime - eager| = {diff:.2e}", flush=True)
        feed = {session.get_inputs()[0].name: x.numpy()}

        def eager():
            with torch.inference_mode():
                model(x)

        def eager_chunked():
            with torch.inference_mode(), use_backend("chunked"):
                model(x)

        stats = common.measure(
            {"eager (automatic backend)": eager, "eager (chunked)": eager_chunked,
             "onnxruntime": lambda: session.run(None, feed)},
            warmup=1, windows=args.windows,
        )
    for name, s in stats.items():
        print(f"{name:28s} median {s.median:8.1f} ms  (windows {s.lo:.1f}-{s.hi:.1f} ms)")
    ort = stats["onnxruntime"].median
    ratio_auto = ort / stats["eager (automatic backend)"].median
    ratio_chunked = ort / stats["eager (chunked)"].median
    print(f"onnxruntime / eager (automatic backend) = {ratio_auto:.2f}; onnxruntime / eager (chunked) = "
          f"{ratio_chunked:.2f}  (< 1: onnxruntime is faster)")
    common.finish(args.json, env, {
        "export_seconds": r.seconds, "export_cpu_seconds": r.cpu_seconds, "file_bytes": r.file_bytes,
        "parameter_bytes": r.parameter_bytes, "max_abs_diff": diff, "latency": stats,
        "ratio_vs_eager_auto": ratio_auto, "ratio_vs_eager_chunked": ratio_chunked,
    })


if __name__ == "__main__":
    main()

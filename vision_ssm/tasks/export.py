"""Export a model for deployment: ONNX through ``torch.onnx.export(dynamo=True)``, checked in onnxruntime.

The helper sits on the ``tasks`` floor because it is a user workflow over any model (the registered
ones or a custom ``nn.Module`` built from ``vision_ssm.layers``), like training; it needs only the op
floor's backend choice, and its optional packages (``onnx``, ``onnxscript``, ``onnxruntime``: the
``export`` extra) are imported when it runs.

What it does on top of a plain ``torch.onnx.export(model, (x,), path, dynamo=True)``:

* the scan is recorded with the pure-PyTorch ``chunked`` backend whatever backend is configured
  (numba, Triton and mamba-ssm kernels cannot be carried by an ONNX file); while an exporter records,
  that backend and route/merge take their *export form* (a log-depth chunked scan and index gathers:
  see ``docs/export.md``), which keeps the graph small and its constants the size of the index tables;
* the ONNX graph is not put through onnxscript's optimizer (``optimize=False``): on
  ``vmamba_tiny_s1l8`` that pass took two thirds of the export time, and onnxruntime applies its own
  graph optimisations when it loads the file (the latency we measured was the same either way);
* the per-node debugging metadata (Python stack traces, module paths: ~9 MB for ``vmamba_tiny_s1l8``)
  is dropped unless ``keep_metadata=True``, so the file is the size of the weights.

The graph has static shapes: the example's batch and image size (the scan's direction tables are
built for one H×W). Export once per deployed input size.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..ops import use_backend

__all__ = ["OnnxExport", "export_onnx", "onnx_max_abs_diff", "onnxruntime_session", "parameter_bytes"]

#: Above this many bytes of weights the file keeps them in a ``<path>.data`` side file (protobuf caps
#: one file at 2 GiB).
EXTERNAL_DATA_BYTES = 1_800_000_000


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: The ``.onnx`` file.
        files: Every file written (the ``.onnx`` file, and its ``.data`` side file if any).
        file_bytes: Their total size.
        parameter_bytes: Bytes of the model's parameters and buffers (:func:`parameter_bytes`).
        seconds: Wall time of the export (tracing, translation, saving).
        cpu_seconds: CPU time of this process during the export (on a busy machine, closer to what
            an idle one would take than ``seconds``).
    """

    path: Path
    files: tuple[Path, ...]
    file_bytes: int
    parameter_bytes: int
    seconds: float
    cpu_seconds: float

    @property
    def size_ratio(self) -> float:
        """``file_bytes / parameter_bytes``."""
        return self.file_bytes / max(1, self.parameter_bytes)


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers of ``model`` (each tensor counted once)."""
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"ONNX export needs {module!r}, which is not installed: pip install \"vision-ssm[export]\""
        ) from e


def export_onnx(
    model: nn.Module,
    example: Tensor,
    path: str | os.PathLike,
    *,
    opset_version: int | None = None,
    keep_metadata: bool = False,
    external_data: bool | None = None,
) -> OnnxExport:
    """Export ``model`` to ONNX for inference at ``example``'s shape.

    Args:
        model: Any module (switched to ``eval()``; its parameters are not changed).
        example: An input of the deployed shape, e.g. ``(1, 3, 224, 224)`` NCHW float32.
        path: Where to write the ``.onnx`` file (its folder is created).
        opset_version: ONNX opset (default: ``torch.onnx``'s).
        keep_metadata: Keep the per-node debugging metadata (stack traces, module names).
        external_data: Put the weights in a ``<path>.data`` side file (default: only above ~1.8 GB).

    Returns:
        An :class:`OnnxExport` (files, sizes, times).

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``example`` not a floating-point tensor.
        ImportError: ``onnx``/``onnxscript`` missing (the message names the extra to install).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example, Tensor) or not example.is_floating_point():
        got = example.dtype if isinstance(example, Tensor) else type(example).__name__
        raise TypeError(f"export_onnx: example must be a floating-point tensor (e.g. (1, 3, H, W)), got {got}")
    _require("onnx")
    _require("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbytes = parameter_bytes(model)
    if external_data is None:
        external_data = nbytes > EXTERNAL_DATA_BYTES
    model = model.eval()
    t0, c0 = time.perf_counter(), time.process_time()
    kwargs = {} if opset_version is None else {"opset_version": opset_version}
    with use_backend("chunked"):
        program = torch.onnx.export(model, (example,), dynamo=True, optimize=False, **kwargs)
    if not keep_metadata:
        for node in program.model.graph.all_nodes():
            node.metadata_props.clear()
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()  # never leave a stale side file next to a self-contained one
    program.save(str(path), external_data=external_data)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = tuple(p for p in (path, data) if p.exists())
    return OnnxExport(path, files, sum(p.stat().st_size for p in files), nbytes, seconds, cpu)


def onnxruntime_session(path: str | os.PathLike, threads: int | None = None, spinning: bool = False):
    """An onnxruntime CPU ``InferenceSession`` for ``path``.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (default: onnxruntime's).
        spinning: Let idle worker threads spin-wait for work (onnxruntime's default). Off here: spinning
            threads keep burning CPU after a call, which on a shared machine slows whatever runs next
            (and would flatter onnxruntime in a side-by-side timing against eager PyTorch).
    """
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_max_abs_diff(session, model: nn.Module, example: Tensor) -> float:
    """Largest absolute difference between the ONNX session's output and ``model(example)`` (eager)."""
    with torch.no_grad():
        want = model.eval()(example)
    got = session.run(None, {session.get_inputs()[0].name: example.detach().cpu().numpy()})[0]
    return (torch.from_numpy(got) - want.detach().cpu()).abs().max().item()

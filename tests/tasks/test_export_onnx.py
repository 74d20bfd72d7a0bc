"""ONNX export through :func:`vision_ssm.tasks.export.export_onnx`: size, values in onnxruntime, errors.

The timed comparison with eager PyTorch lives in ``benchmarks/export_onnx.py`` (printed, not asserted).
"""
import pytest
import timm
import torch

from vision_ssm.tasks.export import export_onnx, onnx_max_abs_diff, onnxruntime_session, parameter_bytes

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")


def _initializer_bytes(path):
    """Bytes of the floating-point and of the integer initializers of an ONNX file."""
    model = onnx.load(str(path))
    floats = ints = 0
    for t in model.graph.initializer:
        n = len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
            floats += n
        else:
            ints += n
    return floats, ints


def test_onnx_export_is_the_size_of_the_weights_and_matches_eager(tmp_path):
    """The file holds the weights once: no folded per-direction index tensors as large as the
    activations, no folded state buffers, no duplicated weights. onnxruntime reproduces eager."""
    torch.manual_seed(0)
    model = timm.create_model("test_vmamba")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    r = export_onnx(model, x, tmp_path / "m.onnx")
    assert r.files == (tmp_path / "m.onnx",) and r.parameter_bytes == parameter_bytes(model)
    floats, ints = _initializer_bytes(r.path)
    assert floats <= 1.01 * r.parameter_bytes, (floats, r.parameter_bytes)
    # integer constants: three (K*L,) int64 direction tables per stage (the routing index, the same offset
    # by k*L for per-direction gathers, the inverse for the merge), K=4, L = 16², 8², 4², 2²; plus scalars.
    # (Before the export form: 0.9 MB of index tensors expanded to the activations' shape.)
    assert ints <= 3 * 8 * 4 * (256 + 64 + 16 + 4) + 4096, ints
    assert r.file_bytes <= 1.2 * r.parameter_bytes, (r.file_bytes, r.parameter_bytes)
    assert onnx_max_abs_diff(onnxruntime_session(r.path, threads=1), model, x) < 1e-4


def test_onnx_export_keeps_metadata_only_when_asked(tmp_path):
    model = timm.create_model("test_mambavision")
    x = torch.randn(1, 3, 32, 32)
    lean = export_onnx(model, x, tmp_path / "lean.onnx")
    assert not any(n.metadata_props for n in onnx.load(str(lean.path)).graph.node)
    assert onnx_max_abs_diff(onnxruntime_session(lean.path, threads=1), model, x) < 1e-4


def test_export_onnx_rejects_bad_arguments(tmp_path):
    model = timm.create_model("test_vmamba")
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        export_onnx("test_vmamba", torch.randn(1, 3, 32, 32), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"example must be a floating-point tensor .*got torch.int64"):
        export_onnx(model, torch.zeros(1, 3, 32, 32, dtype=torch.long), tmp_path / "m.onnx")

"""SS2D: upstream parameter layout and init, v0 forward against an independent cross-scan
composition (blocks.md §1.4/§1.8), layouts, backends, and MambaAD's HSS fixtures (hybrid scans, K=2/4/8)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from paths import FIXTURES as FIXTURES_DIR
from safetensors.torch import load_file

from vision_ssm.layers import SS2D
from vision_ssm.ops import available_backends, get_directions, selective_scan_reference, use_backend

FIXTURES = FIXTURES_DIR


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """O(1) random weights so that every branch matters (the SS2D init leaves the scan near identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "A_logs":
                base = torch.log(torch.arange(1, p.shape[1] + 1.0)).expand_as(p)
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            elif name == "dt_projs_bias":
                dt = torch.exp(torch.rand(p.shape, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif p.dim() == 1:
                center = 1.0 if name.endswith("weight") or name == "Ds" else 0.0
                p.copy_(center + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1] if p.dim() == 3 else p[0].numel()))


def _cross_scan(x: torch.Tensor) -> torch.Tensor:
    """VMamba CrossScan (blocks.md §1.8) written with flips/transposes: (B, D, H, W) -> (B, 4, D, L)."""
    B, D, H, W = x.shape
    row = x.reshape(B, D, H * W)
    col = x.transpose(2, 3).reshape(B, D, H * W)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


def _cross_merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """VMamba CrossMerge: (B, 4, D, L) -> (B, D, H, W)."""
    B, K, D, L = ys.shape
    y = ys[:, 0] + ys[:, 2].flip(-1)
    yt = ys[:, 1] + ys[:, 3].flip(-1)
    return y.view(B, D, H, W) + yt.view(B, D, W, H).transpose(2, 3)


def _upstream_v0(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """SS2D v0 forward as upstream composes it (scan-domain projections), on (B, H, W, C)."""
    B, H, W, _ = x.shape
    K, R, N, D = 4, m.dt_rank, m.d_state, m.d_inner
    xz = F.linear(x, m.in_proj.weight)
    xi, z = xz.chunk(2, dim=-1)
    xi = F.silu(m.conv2d(xi.permute(0, 3, 1, 2)))
    xs = _cross_scan(xi)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, m.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, m.dt_projs_weight)
    ys = selective_scan_reference(
        xs.reshape(B, K * D, -1), dts.reshape(B, K * D, -1), -torch.exp(m.A_logs), Bs, Cs, m.Ds,
        delta_bias=m.dt_projs_bias.reshape(-1), delta_softplus=True,
    )
    y = _cross_merge(ys.view(B, K, D, -1), H, W).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (D,), m.out_norm.weight, m.out_norm.bias, 1e-5) * F.silu(z)
    return F.linear(y, m.out_proj.weight)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_parameter_layout_matches_upstream():
    # Worked shapes of blocks.md §1.3 / §1.6
    v0 = SS2D(96, device="meta")
    shapes = {k: tuple(v.shape) for k, v in v0.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (384, 96), "conv2d.weight": (192, 1, 3, 3), "conv2d.bias": (192,),
        "x_proj_weight": (4, 38, 192), "dt_projs_weight": (4, 192, 6), "dt_projs_bias": (4, 192),
        "A_logs": (768, 16), "Ds": (768,), "out_norm.weight": (192,), "out_norm.bias": (192,),
        "out_proj.weight": (96, 192),
    }
    v2 = SS2D(96, d_state=1, ssm_ratio=1.0, conv_bias=False, gate=False, channels_first=True, device="meta")
    shapes = {k: tuple(v.shape) for k, v in v2.state_dict().items()}
    assert shapes["x_proj_weight"] == (4, 8, 96) and shapes["in_proj.weight"] == (96, 96)
    assert "conv2d.bias" not in shapes and shapes["A_logs"] == (384, 1)
    hss = SS2D(16, scan="sweep", directions=8, scan_index_size=8, device="meta")
    shapes = {k: tuple(v.shape) for k, v in hss.state_dict().items()}
    assert shapes["x_proj_weight"] == (8, 33, 32) and shapes["A_logs"] == (256, 16)
    assert shapes["scans.index_flat"] == (1, 1, 64) and shapes["scans.index_flat_inv"] == (1, 1, 64)
    assert not any("scans" in n for n, _ in hss.named_parameters())


def test_init_follows_upstream():
    torch.manual_seed(0)
    m = SS2D(32, d_state=8)
    assert torch.equal(m.A_logs, torch.log(torch.arange(1, 9.0)).expand(256, 8))
    assert torch.equal(m.Ds, torch.ones(256))
    dt = F.softplus(m.dt_projs_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert not torch.equal(m.dt_projs_bias[0], m.dt_projs_bias[1])  # each direction draws its own
    assert m.dt_projs_weight.abs().max() <= m.dt_rank ** -0.5
    assert m.x_proj_weight.abs().max() <= m.d_inner ** -0.5
    assert m.A_logs.dtype == torch.float32 and m.Ds.dtype == torch.float32


@pytest.mark.parametrize("hw", [(5, 7), (6, 6)])
def test_v0_forward_matches_upstream_composition(hw):
    torch.manual_seed(0)
    m = SS2D(12, d_state=4).eval()
    _randomize(m)
    x = torch.randn(2, *hw, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = _upstream_v0(m, x)
        for backend in available_backends("cpu"):
            with use_backend(backend):
                out = m(x)
            assert _rel(out, ref) <= 1e-5, backend


def test_channels_first_matches_channels_last():
    torch.manual_seed(0)
    kw = dict(d_state=1, ssm_ratio=2.0, conv_bias=False, gate=False)
    cf = SS2D(8, channels_first=True, **kw).eval()
    cl = SS2D(8, channels_first=False, **kw).eval()
    _randomize(cf)
    cl.load_state_dict(cf.state_dict())
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(cf(x), cl(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


def test_linear2d_loads_conv_shaped_weights():
    m = SS2D(8, gate=False, channels_first=True)
    sd = {k: (v[:, :, None, None] if k.endswith("proj.weight") else v) for k, v in m.state_dict().items()}
    m2 = SS2D(8, gate=False, channels_first=True)
    m2.load_state_dict(sd)
    assert torch.equal(m2.in_proj.weight, m.in_proj.weight) and m2.out_proj.weight.dim() == 2


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_linear2d_is_a_1x1_conv_in_either_memory_format(memory_format):
    from vision_ssm.layers import Linear2d

    torch.manual_seed(0)
    m = Linear2d(6, 5)
    x = torch.randn(2, 6, 3, 4).contiguous(memory_format=memory_format).requires_grad_()
    y = m(x)
    ref = F.conv2d(x, m.weight[:, :, None, None], m.bias)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    assert y.is_contiguous(memory_format=memory_format)  # the layout passes through
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, m.weight, m.bias), g)
    want = torch.autograd.grad(ref, (x, m.weight, m.bias), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_backward_reaches_every_parameter():
    m = SS2D(8, d_state=4, directions=2)
    m(torch.randn(2, 4, 5, 8)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_gate_off_and_no_out_norm():
    m = SS2D(8, gate=False, out_norm=None, d_conv=1)
    assert isinstance(m.out_norm, torch.nn.Identity) and m.in_proj.weight.shape == (16, 8)
    assert m(torch.randn(1, 3, 4, 8)).shape == (1, 3, 4, 8)


# ---- MambaAD HSS fixtures: x + SS2D(LayerNorm(x)), hybrid scans with K directions -----------------

HSS = sorted(p.stem for p in FIXTURES.glob("mambaad_hss_*.safetensors"))


def _hss_case(name: str):
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    t = load_file(FIXTURES / f"{name}.safetensors")
    kw = meta["builder_kwargs"]
    return meta, t, kw["scan_type"], kw["num_direction"], kw["size"], kw["hidden_dim"]


@pytest.mark.parametrize("name", HSS)
def test_mambaad_hss_fixture(name):
    meta, t, scan, K, size, C = _hss_case(name)
    ss2d = SS2D(C, scan=scan, directions=K, scan_index_size=size).eval()
    norm = torch.nn.LayerNorm(C)
    sd = {k[len("state_dict."):]: v for k, v in t.items() if k.startswith("state_dict.")}
    assert torch.equal(ss2d.scans.index_flat, sd["self_attention.scans.index_flat"])
    norm.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("ln_1.")})
    ss2d.load_state_dict({k[15:]: v for k, v in sd.items() if k.startswith("self_attention.")}, strict=True)
    x, ref = t["input.0"], t["output.0"]
    with torch.no_grad():
        for backend in available_backends("cpu"):
            with use_backend(backend):
                out = x + ss2d(norm(x))
            assert _rel(out, ref) <= 1e-5, (name, backend)


@pytest.mark.parametrize("scan", ["hilbert", "zigzag"])
def test_hybrid_scan_k8_trains(scan):
    m = SS2D(8, d_state=4, scan=scan, directions=8)
    assert m.x_proj_weight.shape[0] == 8 and m.A_logs.shape[0] == 8 * 16
    y = m(torch.randn(2, 8, 8, 8))
    y.square().mean().backward()
    assert y.shape == (2, 8, 8, 8)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_fixed_direction_set_equals_named_family():
    torch.manual_seed(0)
    named = SS2D(8, d_state=4, scan="snake", directions=4).eval()
    fixed = SS2D(8, d_state=4, directions=get_directions("snake", 5, 6, 4)).eval()
    fixed.load_state_dict(named.state_dict())
    x = torch.randn(1, 5, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), named(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="5x6"):
        fixed(torch.randn(1, 6, 5, 8))


@pytest.mark.parametrize(
    "kw", [dict(d_state=1), dict(d_state=4, scan="hilbert", directions=8), dict(d_state=2, ssm_ratio=1.0)]
)
def test_ss2d_channel_last_core_matches_channel_first(kw):
    """``forward_core`` on a ``channels_last`` map (the CUDA layout, whose projections are laid out
    channel-last for the fused Triton core) computes what the channel-first path does, values
    and gradients."""
    torch.manual_seed(0)
    m = SS2D(d_model=8, **kw).train()
    x = torch.randn(2, m.d_inner, 5, 6)
    x_cf = x.clone().requires_grad_()
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    assert x_cl.reshape(2, m.d_inner, 30).stride(1) == 1
    y_cf, y_cl = m.forward_core(x_cf), m.forward_core(x_cl)
    torch.testing.assert_close(y_cl, y_cf, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_cf)
    grads_cf = torch.autograd.grad(y_cf, [x_cf, *m.parameters()], g, allow_unused=True)
    grads_cl = torch.autograd.grad(y_cl, [x_cl, *m.parameters()], g, allow_unused=True)
    for a, b in zip(grads_cl, grads_cf):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_ss2d_memory_format_choice(monkeypatch):
    """Channel-last on CUDA, and on CPU only for numba's fused inference core at small d_state; never
    under FX tracing (devices unknown there)."""
    import vision_ssm.layers.ss2d as ss2d_mod
    from vision_ssm.ops import available_backends

    class _Cuda:  # stands in for a CUDA tensor: only ``device`` is consulted
        device = torch.device("cuda")

    cpu = torch.zeros(1, 2, 3, 3)
    assert SS2D._core_memory_format(cpu) == torch.contiguous_format  # default: gradients may be needed
    assert SS2D._core_memory_format(cpu, "chunked", 1, needs_grad=False) == torch.contiguous_format
    if "numba" in available_backends("cpu"):
        assert SS2D._core_memory_format(cpu, "numba", 1, needs_grad=False) == torch.channels_last
        assert SS2D._core_memory_format(cpu, "numba", 16, needs_grad=False) == torch.contiguous_format
    assert SS2D._core_memory_format(_Cuda()) == torch.channels_last
    monkeypatch.setattr(ss2d_mod, "_is_fx_tracing", lambda: True)
    assert SS2D._core_memory_format(_Cuda()) == torch.contiguous_format
    assert SS2D._core_memory_format(cpu, "numba", 1, needs_grad=False) == torch.contiguous_format


def test_vmamba_model_runs_in_channels_last_memory():
    """``model.to(memory_format=torch.channels_last)`` with a channels_last input (timm's
    ``--channels-last``) gives the same outputs and gradients as contiguous memory."""
    import timm

    import vision_ssm  # noqa: F401

    torch.manual_seed(0)
    m = timm.create_model("vmamba_tiny_s1l8", num_classes=4, depths=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    y0 = m(x)
    y0.sum().backward()
    g0 = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m = m.to(memory_format=torch.channels_last)
    y1 = m(x.contiguous(memory_format=torch.channels_last))
    y1.sum().backward()
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip((p.grad for p in m.parameters()), g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("K,R,D", [(1, 3, 5), (2, 1, 4), (4, 6, 96), (8, 2, 3)])
def test_block_diagonal_matches_torch_block_diag(K, R, D):
    """The K-block dt-projection weight: same values and gradient as ``torch.block_diag``."""
    from vision_ssm.layers.ss2d import _block_diagonal

    w = torch.randn(K, R, D, dtype=torch.float64, requires_grad=True)
    got, ref = _block_diagonal(w), torch.block_diag(*w)
    assert got.shape == (K * R, K * D) and torch.equal(got, ref)
    g = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(got, w, g)[0], torch.autograd.grad(ref, w, g)[0])

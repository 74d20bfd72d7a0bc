"""The ``mamba_ssm`` backend: mamba-ssm's compiled CUDA selective scan in our own autograd.Function.

Only the compiled extension module ``selective_scan_cuda`` is imported (lazily, when this backend
is used) — never the ``mamba_ssm`` Python package, whose import pulls in triton, transformers and
fails outright without the extension on some releases (see ``docs/backends.md``).

Calling convention of the extension (positional arguments; facts from mamba-ssm's bindings):

* ``fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)`` returns ``[out, x]``, or
  ``[out, x, out_z]`` when ``z`` is given (``out`` is then the pre-gate output and ``out_z`` the
  result). ``x`` ``(Bt, D, n_chunks, 2N)`` holds the chunk-end states; the last state is
  ``x[:, :, -1, 1::2]``.
* ``bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus, recompute_out_z)``
  returns ``[du, ddelta, dA, dB, dC, dD, ddelta_bias]`` plus ``dz`` when ``z`` is given.

Requirements of the kernel that this adapter takes care of: CUDA tensors with ``stride(-1) == 1``;
``u``, ``delta``, ``z`` and variable ``B``/``C`` in one input dtype (fp32/fp16/bf16); ``A``,
``D``, ``delta_bias`` and constant ``B``/``C`` in fp32. Like mamba-ssm, the gradient of
``last_state`` is not propagated, and the backward is not deterministic (atomic adds).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: What to do when mamba-ssm is present but its Mamba-1 scan is not (the default build of mamba-ssm's
#: main branch after 2.3.2.post1 skips it).
BUILD_HINT = (
    'install mamba-ssm with its CUDA selective scan: MAMBA_KEEP_CUDA_BUILD=TRUE pip install "vision-ssm[cuda]" '
    "--no-build-isolation (mamba-ssm's main branch builds the Mamba-1 `selective_scan_cuda` extension only "
    "when MAMBA_KEEP_CUDA_BUILD=TRUE; releases up to 2.3.2.post1 always build it)"
)


def _ext():
    import selective_scan_cuda  # noqa: PLC0415  (lazy: compiled extension of mamba-ssm)

    return selective_scan_cuda


def probe(device: str = "cuda") -> str | None:
    """Why this backend cannot run here, or ``None`` if it can.

    Whether ``import mamba_ssm`` succeeds says nothing (mamba-ssm's main branch imports without its
    compiled scan and raises only when called), so this imports the extension itself, checks its
    ``fwd``/``bwd`` entry points and, when a CUDA device exists, runs one tiny forward on ``device``.
    """
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        ext = _ext()
    except Exception as e:  # ImportError, or a broken binary (undefined symbol: OSError / ImportError)
        return f"`import selective_scan_cuda` failed ({type(e).__name__}: {e}); {BUILD_HINT}"
    if not (callable(getattr(ext, "fwd", None)) and callable(getattr(ext, "bwd", None))):
        return f"`selective_scan_cuda` has no fwd/bwd entry points; {BUILD_HINT}"
    try:
        u = torch.zeros(1, 1, 2, device=device)
        A = -torch.ones(1, 1, device=device)
        ext.fwd(u, u, A, A, A, None, None, None, False)
    except Exception as e:  # the kernel exists but cannot run (e.g. built for another GPU architecture)
        return f"mamba-ssm's `selective_scan_cuda.fwd` failed on this GPU ({type(e).__name__}: {e}); {BUILD_HINT}"
    return None


class MambaSSMScanFn(torch.autograd.Function):
    """``selective_scan_cuda.fwd/.bwd`` with mamba-ssm semantics; canonical (4-D or constant) B/C."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, return_last_state: bool):
        ext = _ext()
        # gradients are returned in each input's own dtype (the kernel may need another one)
        ctx.in_dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias)]
        u = u if u.stride(-1) == 1 else u.contiguous()
        delta = delta.to(u.dtype)
        delta = delta if delta.stride(-1) == 1 else delta.contiguous()
        A = A.float().contiguous()
        B = B.float().contiguous() if B.dim() == 2 else B.to(u.dtype).contiguous()
        C = C.float().contiguous() if C.dim() == 2 else C.to(u.dtype).contiguous()
        D = None if D is None else D.float().contiguous()
        delta_bias = None if delta_bias is None else delta_bias.float().contiguous()
        if z is not None:
            z = z.to(u.dtype)
            z = z if z.stride(-1) == 1 else z.contiguous()
        res = ext.fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        out, x = res[0], res[1]
        result = res[2] if z is not None else out
        ctx.delta_softplus = delta_softplus
        ctx.has_D, ctx.has_bias = D is not None, delta_bias is not None
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, x, out if z is not None else None)
        last = x[:, :, -1, 1::2].float().contiguous()
        ctx.mark_non_differentiable(last)
        return result, last

    @staticmethod
    def backward(ctx, dout, _dlast):
        ext = _ext()
        u, delta, A, B, C, D, z, delta_bias, x, out = ctx.saved_tensors
        dout = dout.to(u.dtype)
        dout = dout if dout.stride(-1) == 1 else dout.contiguous()
        res = ext.bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, None, ctx.delta_softplus, False)
        du, ddelta, dA, dB, dC, dD, ddelta_bias = res[:7]
        dz = res[7] if z is not None else None
        grads = [du, ddelta, dA, dB, dC, dD if ctx.has_D else None, dz, ddelta_bias if ctx.has_bias else None]
        grads = [None if g is None or dt is None else g.to(dt) for g, dt in zip(grads, ctx.in_dtypes)]
        return (*grads, None, None)


def _match_groups(B: Tensor, C: Tensor, Bt: int, Dm: int, L: int) -> tuple[Tensor, Tensor]:
    """Make B/C acceptable to the kernel, which takes the group count from ``B`` alone.

    The kernel requires a variable ``C`` to have as many groups as a variable ``B`` (and one group
    when ``B`` is constant). Mixed layouts are expanded here, outside the autograd Function, so
    autograd sums the gradients back: two variable tensors go to ``lcm(G_B, G_C)`` groups; a
    constant ``B`` with a multi-group variable ``C`` becomes per-channel (``G = D``; the caller runs
    that case in fp32 so the constant ``B`` keeps its precision).
    """
    if C.dim() == 2 or (B.dim() == 4 and B.shape[1] == C.shape[1]) or (B.dim() == 2 and C.shape[1] == 1):
        return B, C
    if B.dim() == 2:  # constant B, variable C with G_C > 1: go per channel
        G = Dm
        B = B[None, :, :, None].expand(Bt, Dm, B.shape[1], L)
    else:
        G = math.lcm(B.shape[1], C.shape[1])
        B = B.repeat_interleave(G // B.shape[1], dim=1)
    C = C.repeat_interleave(G // C.shape[1], dim=1)
    return B.contiguous(), C


def selective_scan_mamba_ssm(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan on mamba-ssm's compiled CUDA kernel; canonical arguments as for every backend.

    Arguments, shapes and returns: :class:`~vision_ssm.ops.scan.signature.ScanFn`; ``u`` must be a CUDA
    tensor (fp32/fp16/bf16).
    """
    if not u.is_cuda:
        raise RuntimeError(f"the mamba_ssm backend needs CUDA tensors, got {u.device}")
    if u.dtype == torch.float64:
        raise RuntimeError("the mamba_ssm backend supports float32/float16/bfloat16 inputs, not float64")
    in_dtype = u.dtype
    if B.dim() == 2 and C.dim() == 4 and C.shape[1] > 1 and in_dtype != torch.float32:
        # B becomes a per-channel *variable* tensor, which the kernel reads in the input dtype: run
        # this rare layout in fp32 rather than round the constant B to half precision.
        u, delta, C = u.float(), delta.float(), C.float()
        z = None if z is None else z.float()
    B, C = _match_groups(B, C, u.shape[0], u.shape[1], u.shape[2])
    with torch.autocast("cuda", enabled=False):
        out, last = MambaSSMScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    out = out.to(in_dtype)
    return (out, last) if return_last_state else out

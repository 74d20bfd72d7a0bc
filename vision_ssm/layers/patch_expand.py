"""PatchExpand2D: ×2 spatial upsampling by a linear expansion and pixel shuffle (MambaAD decoder).

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``PatchExpand2D``), used between the
decoder stages of MambaUPNet.
"""
from __future__ import annotations

from torch import Tensor, nn

from ._validate import check_input, check_int
from .norm import NormLayer, get_norm

__all__ = ["PatchExpand2D"]


class PatchExpand2D(nn.Module):
    """Double the spatial size of a channels-last map: ``(B, H, W, dim) → (B, 2H, 2W, out_dim)``.

    ``Linear(dim → 4·out_dim, no bias)``, then each pixel's ``4·out_dim`` channels, read as
    ``(p1, p2, c)`` with ``p1, p2 ∈ {0, 1}``, go to output pixel ``(2h + p1, 2w + p2)`` channel ``c``
    (a pixel shuffle), then ``norm(out_dim)``. MambaAD uses ``out_dim = dim // 2``.

    Like :class:`~vision_ssm.layers.PatchMerging2D`, the first argument is the *input* channels.

    Args:
        dim: Input channels.
        out_dim: Output channels (MambaAD: ``dim // 2``).
        norm_layer: Norm over the output channels, a name or a class (upstream: ``nn.LayerNorm``, eps 1e-5;
            see :mod:`vision_ssm.layers.norm`).

    State-dict keys: ``expand.weight`` ``(4·out_dim, dim)``, ``norm.weight``/``norm.bias`` ``(out_dim,)``.
    """

    def __init__(self, dim: int, out_dim: int, norm_layer: NormLayer = nn.LayerNorm, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        norm, _ = get_norm(norm_layer, channels_first=False)
        self.dim = check_int(dim, "dim", "PatchExpand2D")
        self.out_dim = check_int(out_dim, "out_dim", "PatchExpand2D")
        self.expand = nn.Linear(dim, 4 * out_dim, bias=False, **dd)
        self.norm = norm(out_dim, **dd)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, dim)`` → ``(B, 2H, 2W, out_dim)``, channels-last."""
        check_input(x, "PatchExpand2D", "NHWC", self.dim, self.expand.weight)
        B, H, W, _ = x.shape
        # pixel shuffle "b h w (p1 p2 c) -> b (h p1) (w p2) c" as reshapes (FX- and export-traceable)
        x = self.expand(x).reshape(B, H, W, 2, 2, self.out_dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(B, 2 * H, 2 * W, self.out_dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}"

"""PatchExpand2D: ×2 spatial upsampling by a linear expansion and pixel shuffle (MambaAD decoder).

Upstream: ``lewandofskee/MambaAD: model/mambaad.py`` (``PatchExpand2D``), used between the
decoder stages of MambaUPNet.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PatchExpand2D"]


class PatchExpand2D(nn.Module):
    """Double the spatial size and halve the channels of a channels-last map.

    ``(B, H, W, 2·dim) → Linear(2·dim → 4·dim, no bias) → (B, 2H, 2W, dim) → LayerNorm(dim)``.
    The 4·dim expanded channels are read as ``(p1, p2, c)`` with ``p1, p2 ∈ {0, 1}``: channel
    ``(p1·2 + p2)·dim + c`` goes to output pixel ``(2h + p1, 2w + p2)``, channel ``c``.

    Args:
        dim: Output channels (the input has ``2·dim``).
        norm_layer: Norm over the output channels (upstream: ``nn.LayerNorm``, eps 1e-5).

    State-dict keys: ``expand.weight`` ``(4·dim, 2·dim)``, ``norm.weight``/``norm.bias`` ``(dim,)``.
    """

    def __init__(self, dim: int, norm_layer: type[nn.Module] = nn.LayerNorm, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        self.expand = nn.Linear(2 * dim, 4 * dim, bias=False, **dd)
        self.norm = norm_layer(dim, **dd)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, 2·dim)`` → ``(B, 2H, 2W, dim)``, channels-last."""
        B, H, W, C = x.shape
        if C != 2 * self.dim:
            raise ValueError(f"PatchExpand2D(dim={self.dim}) expects {2 * self.dim} input channels, got {C}")
        x = self.expand(x).view(B, H, W, 2, 2, self.dim)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * H, 2 * W, self.dim)
        return self.norm(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


"""MambaAlign's training targets and losses: synthetic anomalies in both modalities, focal + truncated-L1 + BCE.

Synthetic anomalies (``anomaly.md`` §7.2), per sample of a batch:

1. a mask of 1–3 filled, randomly rotated ellipses (centres uniform, radii in
   ``[max(5, R/8), max(10, R))`` with ``R = min(H, W) // 4``), Gaussian-blurred (σ 2) and thresholded at 0.2;
2. inside the mask, a perturbation added to the RGB tensor and, under the same mask, an independent one to the
   auxiliary tensor: ``noise="white"`` is upstream's ``N(0, std)`` per pixel; ``"smooth"`` is white noise
   low-pass filtered (σ ``smooth_sigma`` px) and rescaled to the same std (a local shift of colour or of
   surface orientation rather than grain); ``"mixed"`` picks one of the two per sample;
3. with probability ``1 − prob`` the sample stays clean (empty mask).

Upstream perturbs both modalities of every synthetic sample. ``modality_mix=True`` instead perturbs the RGB
only, the auxiliary input only or both (each a third of the synthetic samples), so that the model must learn to
see an anomaly in either modality alone. Targets: the synthetic masks, image label ``mask.any()``.

Loss (§7.3): ``w_focal · focal(seg, m; α 0.25, γ 2) + w_trunc · mean(min(|σ(seg) − m|, τ 0.3)) +
w_img · BCE-with-logits(image logit, label)`` (on the logit: no double sigmoid).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AlignLoss", "SynthConfig", "blob_masks", "inject_anomalies"]


@dataclass
class SynthConfig:
    """Settings of :func:`inject_anomalies` (defaults: upstream's)."""

    prob: float = 0.5
    std: float = 0.2
    noise: str = "white"
    smooth_sigma: float = 3.0
    modality_mix: bool = False


def _gauss_blur(x: Tensor, sigma: float) -> Tensor:
    """``(B, C, H, W)`` separable Gaussian blur (reflect padding)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    pad = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C, padding=(0, r - pad))
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C, padding=(r - pad, 0))


def blob_masks(n: int, h: int, w: int, generator: torch.Generator | None = None) -> Tensor:
    """``(n, h, w)`` float masks of 1–3 blurred, thresholded rotated ellipses each (§7.2 steps 1–3)."""
    g = generator
    R = max(min(h, w) // 4, 2)
    lo, hi = max(5, R // 8), max(10, R)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    masks = torch.zeros(n, h, w)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = float(torch.rand(1, generator=g)) * h, float(torch.rand(1, generator=g)) * w
            ry, rx = (float(v) for v in torch.randint(lo, hi, (2,), generator=g))
            th = float(torch.rand(1, generator=g)) * 2 * math.pi
            dy, dx = yy - cy, xx - cx
            xr = dx * math.cos(th) + dy * math.sin(th)
            yr = -dx * math.sin(th) + dy * math.cos(th)
            masks[i] = torch.maximum(masks[i], ((xr / rx) ** 2 + (yr / ry) ** 2 <= 1).float())
    return (_gauss_blur(masks[:, None], 2.0)[:, 0] > 0.2).float()


def _perturbation(shape: torch.Size, cfg: SynthConfig, smooth: Tensor, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(shape, generator=generator)
    if smooth.any():
        low = _gauss_blur(noise, cfg.smooth_sigma)
        low = low / low.flatten(1).std(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        noise = torch.where(smooth.view(-1, 1, 1, 1), low, noise)
    return noise * cfg.std


def inject_anomalies(rgb: Tensor, aux: Tensor | None, cfg: SynthConfig | None = None,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Synthetic anomalies in a batch (see the module docstring).

    Args:
        rgb: ``(B, 3, H, W)`` (as the loader gives it, normalised).
        aux: ``(B, A, H, W)`` or ``None`` (an RGB-only model: only the RGB is perturbed).
        cfg: the settings (default: upstream's).
        generator: CPU random generator (reproducible batches).

    Returns:
        ``(rgb', aux', mask (B, H, W), label (B,))``; the inputs are not modified.
    """
    cfg = cfg or SynthConfig()
    if cfg.noise not in ("white", "smooth", "mixed"):
        raise ValueError(f"SynthConfig.noise must be 'white', 'smooth' or 'mixed', got {cfg.noise!r}")
    B, _, H, W = rgb.shape
    mask = blob_masks(B, H, W, generator)
    mask = mask * (torch.rand(B, generator=generator) < cfg.prob).float().view(B, 1, 1)
    which = torch.randint(0, 3, (B,), generator=generator) if cfg.modality_mix else torch.full((B,), 2)
    smooth = {"white": torch.zeros(B, dtype=torch.bool), "smooth": torch.ones(B, dtype=torch.bool),
              "mixed": torch.rand(B, generator=generator) < 0.5}[cfg.noise]
    if aux is None:
        which = torch.zeros(B, dtype=torch.long)  # only the RGB exists
    m = mask[:, None]
    rgb_on = (which != 1).float().view(B, 1, 1, 1)
    rgb_out = rgb + (_perturbation(rgb.shape, cfg, smooth, generator) * m * rgb_on).to(rgb)
    aux_out = None
    if aux is not None:
        aux_on = (which != 0).float().view(B, 1, 1, 1)
        aux_out = aux + (_perturbation(aux.shape, cfg, smooth, generator) * m * aux_on).to(aux)
    return rgb_out, aux_out, mask.to(rgb.device), (mask.flatten(1).amax(1) > 0).float().to(rgb.device)


class AlignLoss(torch.nn.Module):
    """``w_focal · focal + w_trunc · truncated L1 + w_img · BCE`` (§7.3).

    ``forward(seg_logits (B, 1, H, W) or (B, H, W), image_logit (B,), mask (B, H, W), label (B,))`` → a dict of
    the scalar ``loss`` and its three terms.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, tau: float = 0.3, w_focal: float = 1.0,
                 w_trunc: float = 1.0, w_img: float = 0.5) -> None:
        super().__init__()
        self.alpha, self.gamma, self.tau = alpha, gamma, tau
        self.w_focal, self.w_trunc, self.w_img = w_focal, w_trunc, w_img

    def forward(self, seg: Tensor, logit: Tensor, mask: Tensor, label: Tensor) -> dict[str, Tensor]:
        """See the class docstring."""
        seg = seg.float().reshape(mask.shape)
        mask = mask.float()
        p = seg.sigmoid()
        bce = F.binary_cross_entropy_with_logits(seg, mask, reduction="none")
        p_t = p * mask + (1 - p) * (1 - mask)
        a_t = self.alpha * mask + (1 - self.alpha) * (1 - mask)
        focal = (a_t * (1 - p_t) ** self.gamma * bce).mean()
        trunc = torch.clamp((p - mask).abs(), max=self.tau).mean()
        img = F.binary_cross_entropy_with_logits(logit.float(), label.float())
        loss = self.w_focal * focal + self.w_trunc * trunc + self.w_img * img
        return {"loss": loss, "focal": focal.detach(), "trunc_l1": trunc.detach(), "img": img.detach()}

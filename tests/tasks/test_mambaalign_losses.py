"""MambaAlign's synthetic anomalies (the same mask in both modalities) and its focal + truncated-L1 + BCE loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vision_ssm.tasks.mambaalign_losses import AlignLoss, SynthConfig, blob_masks, inject_anomalies


def _batch(B=16, A=1, S=40):
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, 3, S, S, generator=g), torch.randn(B, A, S, S, generator=g)


def test_blob_masks_sizes_and_counts():
    m = blob_masks(20, 64, 48, torch.Generator().manual_seed(0))
    assert m.shape == (20, 64, 48) and set(m.unique().tolist()) <= {0.0, 1.0}
    frac = m.flatten(1).mean(1)
    assert (frac > 0).all() and (frac < 0.9).all()


def test_upstream_injection_uses_one_mask_for_both_modalities():
    rgb, aux = _batch()
    r2, a2, mask, label = inject_anomalies(rgb, aux, SynthConfig(prob=0.5), torch.Generator().manual_seed(0))
    d_rgb = (r2 - rgb).abs().amax(1) > 0
    d_aux = (a2 - aux).abs().amax(1) > 0
    assert torch.equal(d_rgb, mask.bool()) and torch.equal(d_aux, mask.bool())
    assert torch.equal(label, (mask.flatten(1).amax(1) > 0).float())
    assert 0 < label.sum() < len(label)  # some samples left clean (prob 0.5)
    on = mask.bool()
    assert abs(float((r2 - rgb)[on.unsqueeze(1).expand_as(rgb)].std()) - 0.2) < 0.03
    assert not torch.equal(r2 - rgb, (a2 - aux).expand_as(rgb))  # independent noise


def test_modality_mix_smooth_noise_and_rgb_only():
    rgb, aux = _batch(B=48, A=3)
    cfg = SynthConfig(prob=1.0, noise="smooth", modality_mix=True, std=0.3)
    r2, a2, mask, label = inject_anomalies(rgb, aux, cfg, torch.Generator().manual_seed(0))
    assert label.all()
    rgb_hit = (r2 != rgb).flatten(1).any(1)
    aux_hit = (a2 != aux).flatten(1).any(1)
    kinds = {(bool(a), bool(b)) for a, b in zip(rgb_hit, aux_hit)}
    assert kinds == {(True, False), (False, True), (True, True)}
    d = (r2 - rgb)[rgb_hit][:, 0]
    m = mask[rgb_hit].bool()
    # smooth: neighbouring perturbations are strongly correlated
    inner = m[:, 1:, :] & m[:, :-1, :]
    corr = torch.corrcoef(torch.stack([d[:, 1:, :][inner], d[:, :-1, :][inner]]))[0, 1]
    assert corr > 0.8
    r3, a3, mask3, _ = inject_anomalies(rgb, None, cfg, torch.Generator().manual_seed(0))
    assert a3 is None and torch.equal((r3 != rgb).any(1), mask3.bool())
    with pytest.raises(ValueError, match="noise"):
        inject_anomalies(rgb, aux, SynthConfig(noise="pink"))


def test_loss_terms_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    seg, logit = torch.randn(3, 1, 8, 8, generator=g) * 3, torch.randn(3, generator=g)
    mask = (torch.rand(3, 8, 8, generator=g) > 0.7).float()
    label = torch.tensor([1.0, 0.0, 1.0])
    out = AlignLoss()(seg, logit, mask, label)
    x, p = seg[:, 0], seg[:, 0].sigmoid()
    p_t = torch.where(mask > 0, p, 1 - p)
    a_t = torch.where(mask > 0, torch.tensor(0.25), torch.tensor(0.75))
    focal = (a_t * (1 - p_t) ** 2 * -torch.log(p_t)).mean()
    trunc = torch.minimum((p - mask).abs(), torch.tensor(0.3)).mean()
    img = -(label * F.logsigmoid(logit) + (1 - label) * F.logsigmoid(-logit)).mean()
    assert math.isclose(float(out["focal"]), float(focal), rel_tol=1e-4)
    assert math.isclose(float(out["trunc_l1"]), float(trunc), rel_tol=1e-5)
    assert math.isclose(float(out["img"]), float(img), rel_tol=1e-5)
    assert math.isclose(float(out["loss"]), float(focal + trunc + 0.5 * img), rel_tol=1e-4)
    assert float(AlignLoss()(x * 0 - 20, logit, mask * 0, label)["trunc_l1"]) < 1e-6
    assert float(AlignLoss()(x * 0 - 20, logit, mask * 0 + 1, label)["trunc_l1"]) == pytest.approx(0.3)

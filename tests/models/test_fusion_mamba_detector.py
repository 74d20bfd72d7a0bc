"""Fusion-Mamba detector on torchvision's FCOS / RetinaNet: the train/eval calling convention, gradients into the
FMBs, detections at the input size, a short fit on a generated paired set, and the errors for bad pairs."""
from __future__ import annotations

import pytest
import torch

from vision_ssm.models.fusion_mamba_detector import FusionMambaDetector, FusionMambaFPN, fusion_mamba_detector


def _detector(head: str = "fcos", **kwargs) -> FusionMambaDetector:
    torch.manual_seed(0)
    kw = dict(num_classes=2, head=head, fpn_channels=64, min_size=64, max_size=64)
    return fusion_mamba_detector("test_fusion_mamba", **{**kw, **kwargs})


def _samples(n: int = 2, size: int = 64, seed: int = 0):
    """``n`` (rgb (3, S, S), ir (1, S, S), target) triples: a bright square in RGB (class 0), a warm one in IR (1)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        rgb, ir = 0.1 * torch.rand(3, size, size, generator=g), 0.2 * torch.rand(1, size, size, generator=g)
        boxes = []
        for img in (rgb, ir):
            s = int(torch.randint(14, 24, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
            img[:, y0:y0 + s, x0:x0 + s] = 0.9
            boxes.append([x0, y0, x0 + s, y0 + s])
        out.append((rgb, ir, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor([0, 1])}))
    return out


@pytest.mark.parametrize("head, keys", [("fcos", {"classification", "bbox_regression", "bbox_ctrness"}),
                                        ("retinanet", {"classification", "bbox_regression"})])
def test_train_returns_finite_losses_with_gradients_in_the_fmbs(head, keys):
    m = _detector(head).train()
    data = _samples()
    losses = m([d[:2] for d in data], [d[2] for d in data])
    assert set(losses) == keys and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    fmb = dict(m.backbone.fmb.named_parameters())
    assert fmb and all(p.grad is not None for p in fmb.values())
    assert sum(float(p.grad.abs().sum()) for p in fmb.values()) > 0
    for stream in (m.backbone.rgb, m.backbone.ir):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stream.parameters())


def test_eval_returns_torchvision_detections_at_the_input_size():
    m = _detector(score_thresh=0.0, detections_per_img=20).eval()
    (rgb, ir, _), = _samples(1)
    stacked = torch.rand(4, 48, 80)  # resized to 64 px by the transform; boxes come back at 48×80
    with torch.no_grad():
        out = m([(rgb, ir), stacked])
    assert len(out) == 2
    for det, (h, w) in zip(out, [(64, 64), (48, 80)]):
        assert set(det) == {"boxes", "scores", "labels"}
        k = len(det["boxes"])
        assert 0 < k <= 20 and det["boxes"].shape == (k, 4) and det["scores"].shape == det["labels"].shape == (k,)
        assert det["labels"].dtype == torch.int64 and det["labels"].max() < 2
        b = det["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()


def test_a_pair_and_its_stacked_tensor_give_the_same_detections():
    m = _detector(score_thresh=0.0).eval()
    (rgb, ir, _), = _samples(1)
    with torch.no_grad():
        a, b = m([(rgb, ir)])[0], m([torch.cat([rgb, ir])])[0]
    torch.testing.assert_close(a, b)


def test_a_few_steps_on_a_generated_paired_set_decrease_the_loss():
    m = _detector("fcos").train()
    data = _samples(2)
    images, targets = [d[:2] for d in data], [d[2] for d in data]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = sum(m(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_three_channel_ir_normalises_six_channels():
    m = _detector(backbone_kwargs={"ir_chans": 3}, ir_mean=[0.5], ir_std=[0.25])
    t = m.detector.transform
    assert len(t.image_mean) == len(t.image_std) == 6 and t.image_mean[3:] == [0.5] * 3
    assert isinstance(m.detector.backbone, FusionMambaFPN) and m.detector.backbone.strides == [8, 16, 32, 64, 128]


@pytest.mark.parametrize("sample, match", [
    ((torch.rand(3, 64, 64), torch.rand(3, 64, 64)), r"IR image must be \(1, H, W\)"),
    ((torch.rand(1, 64, 64), torch.rand(1, 64, 64)), r"RGB image must be \(3, H, W\)"),
    ((torch.rand(3, 64, 64), None), "IR image is missing"),
    ((None, torch.rand(1, 64, 64)), "RGB image is missing"),
    ((torch.rand(3, 64, 64), torch.rand(1, 32, 64)), "same size"),
    ((torch.rand(3, 64, 64),), "pair"),
    (torch.rand(3, 64, 64), "IR image missing"),
    (torch.rand(6, 64, 64), r"\(4, H, W\)"),
])
def test_bad_pairs_are_refused(sample, match):
    m = _detector().eval()
    with pytest.raises(ValueError, match=match):
        m([sample])


def test_bad_arguments_are_refused():
    m = _detector()
    with pytest.raises(TypeError, match="list of samples"):
        m(torch.rand(4, 64, 64))
    with pytest.raises(ValueError, match="empty"):
        m([])
    with pytest.raises(ValueError, match="channels"):
        m.detector.backbone(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="head must be"):
        _detector("yolo")
    with pytest.raises(ValueError, match="multiple of 32"):
        _detector(fpn_channels=48)
    with pytest.raises(ValueError, match="ir_mean needs 1"):
        _detector(ir_mean=[0.1, 0.2])

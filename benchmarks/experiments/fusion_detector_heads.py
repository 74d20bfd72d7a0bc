"""FCOS vs RetinaNet under the Fusion-Mamba detector: a short CPU run on a generated paired RGB-IR set.

``python -m benchmarks.experiments.fusion_detector_heads [--iters 40] [--threads 1]`` — both heads on the same
``test_fusion_mamba`` backbone, FPN width 64, 64×64 pairs, batch 4, AdamW lr 1e-3, the same seed and the same
batches. Prints the summed loss averaged over the first and the last 5 iterations, its ratio, the median wall
time of one training step, and the training-set recall at IoU 0.5 (a detection of the right class with score
≥ 0.05) after training. The numbers in ``docs/models/fusion_mamba.md`` come from this script.
"""
import argparse
import statistics
import time

import torch
from torchvision.ops import box_iou

from vision_ssm.models.fusion_mamba_detector import fusion_mamba_detector


def paired_set(n: int, size: int = 64, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
    """``n`` pairs: class 0 is a bright square in RGB only, class 1 a warm disc in IR only (dark in RGB)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(n):
        rgb = 0.1 + 0.05 * torch.rand(3, size, size, generator=g)
        ir = 0.2 + 0.05 * torch.rand(1, size, size, generator=g)
        boxes, labels = [], []
        for cls in (0, 1):
            s = int(torch.randint(12, 24, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
            if cls == 0:
                rgb[:, y0:y0 + s, x0:x0 + s] = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.5
            else:
                r, cx, cy = s / 2, x0 + s / 2, y0 + s / 2
                ir[0][((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) <= r * r] = 0.9
            boxes.append([x0, y0, x0 + s, y0 + s])
            labels.append(cls)
        out.append((rgb, ir, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}))
    return out


def run(head: str, data: list, iters: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = fusion_mamba_detector("test_fusion_mamba", num_classes=2, head=head, fpn_channels=64, min_size=64,
                                  max_size=64, score_thresh=0.05)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses, times = [], []
    model.train()
    for it in range(iters):
        idx = [(it * batch + j) % len(data) for j in range(batch)]
        t = time.perf_counter()
        loss = sum(model([data[i][:2] for i in idx], [data[i][2] for i in idx]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(loss.item())
    model.eval()
    hit = total = 0
    with torch.no_grad():
        for rgb, ir, tgt in data:
            det = model([(rgb, ir)])[0]
            for box, lab in zip(tgt["boxes"], tgt["labels"]):
                keep = det["labels"] == lab
                total += 1
                hit += int(keep.any() and box_iou(box[None], det["boxes"][keep]).max() >= 0.5)
    return {"head": head, "loss_first5": statistics.mean(losses[:5]), "loss_last5": statistics.mean(losses[-5:]),
            "ratio": statistics.mean(losses[-5:]) / statistics.mean(losses[:5]),
            "step_s_median": statistics.median(times[1:]), "total_s": sum(times), "recall50": hit / total,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = paired_set(args.pairs)
    for head in ("fcos", "retinanet"):
        r = run(head, data, args.iters, args.batch)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()

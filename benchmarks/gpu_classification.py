"""The classification recipe's training throughput on one GPU, bf16 + channels_last (img/s, end to end).

Run on a CUDA machine, from the repository root::

    python -m benchmarks.gpu_classification                       # vmamba_tiny_s1l8, mambavision_tiny
    python -m benchmarks.gpu_classification --images 4096 --batch-size 128 --workers 8 --json cls.json
    python -m benchmarks.gpu_classification --cuda-graph 0,1     # eager and CUDA-graph training steps

Unlike ``gpu_models`` (model steps on random tensors) this times :func:`vision_ssm.tasks.classification.train`
itself: timm's data pipeline (an ImageFolder of random 256x256 JPEGs written to a temporary folder, RandAugment
off, RandomResizedCrop + flip on), AdamW, the cosine schedule, ``ModelEmaV3``, bf16 autocast, channels_last and
gradient clipping. Epoch 1 (warm-up: Triton compilation, allocator) is discarded; the figure is the recipe's own
``train_img_per_s`` of the last epoch (images of the epoch / its wall time, data loading included), and the
median over ``--epochs - 1`` epochs is printed beside it. ``--cuda-graph 0,1`` runs each model twice, eagerly and
with the recipe's ``cuda_graph`` option (forward and backward replayed from CUDA graphs).
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common

DEFAULT_MODELS = "vmamba_tiny_s1l8,mambavision_tiny"


def write_random_folder(root: Path, images: int, classes: int = 10, size: int = 256, seed: int = 0) -> Path:
    """``root/train/<c>/*.jpg`` random images (``images`` in all) and a small ``root/val``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", images), ("val", max(classes, images // 16))):
        for i in range(n):
            d = root / split / f"c{i % classes}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=90)
    return root


def run(model: str, data: Path, out: Path, batch_size: int, epochs: int, workers: int, amp: str = "bf16",
        channels_last: bool = True, device: str = "cuda", cuda_graph: bool = False) -> dict:
    """One short recipe run; returns the per-epoch throughputs and the last val top-1 (random data: ~chance)."""
    from vision_ssm.tasks.classification import ClassificationConfig, train

    cfg = ClassificationConfig(data_root=str(data), model=model, output=str(out), epochs=epochs,
                               batch_size=batch_size, workers=workers, amp=amp, channels_last=channels_last,
                               model_ema=True, clip_grad=5.0, lr=1e-3, warmup_epochs=0, progress=False,
                               device=device, eval_every=0, cuda_graph=cuda_graph)
    res = train(cfg)
    ips = [r["train_img_per_s"] for r in res["history"]]
    return {"img_per_s_epochs": ips, "img_per_s_last": ips[-1],
            "img_per_s_median_after_first": statistics.median(ips[1:]) if len(ips) > 1 else float("nan"),
            "final_train_loss": res["history"][-1]["train_loss"]}


def main(argv=None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--images", type=int, default=2048, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="epoch 1 is warm-up")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "none"])
    p.add_argument("--cuda-graph", default="0", help="comma list of 0/1: the recipe's cuda_graph option")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_classification needs a CUDA GPU")
    common.set_threads(a.threads)
    env = common.environment("cuda")
    common.print_header(env, f"recipe bs {a.batch_size}, {a.amp}, channels_last {not a.no_channels_last}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_random_folder(Path(tmp) / "data", a.images)
        for name in a.models.split(","):
            for graph in (bool(int(g)) for g in a.cuda_graph.split(",")):
                r = run(name, data, Path(tmp) / f"{name}_{int(graph)}", a.batch_size, a.epochs, a.workers,
                        None if a.amp == "none" else a.amp, not a.no_channels_last, cuda_graph=graph)
                label = name + (" cuda_graph" if graph else "")
                results[label] = r
                epochs = [round(x, 1) for x in r["img_per_s_epochs"]]
                print(f"{label:33s} train {r['img_per_s_last']:8.1f} img/s (last epoch; median after warm-up "
                      f"{r['img_per_s_median_after_first']:.1f}; epochs {epochs})", flush=True)
    common.finish(a.json, env, results)


if __name__ == "__main__":
    main()

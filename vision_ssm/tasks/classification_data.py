"""Data side of the classification recipe, on timm's pieces: datasets, transforms, loaders, mixup, criteria.

* datasets: ``timm.data.create_dataset`` (an ImageFolder for ``dataset=""``; never downloads);
* transforms: ``timm.data.create_transform`` with the model's data config (``resolve_data_config``) and the
  recipe's augmentation (RandomResizedCrop, flips, colour jitter, RandAugment, random erasing);
* loaders: a plain ``DataLoader`` whose training sampler is always a ``DistributedSampler`` (``num_replicas=1``
  in a single process), seeded with the run's seed and advanced with ``set_epoch``, so the global batches of a
  torchrun run with N processes are exactly the batches of a single process with an N-times larger batch;
  evaluation uses :class:`~vision_ssm.tasks.distributed.ShardSampler` (exact, no padding);
* mixup/cutmix: ``timm.data.Mixup``; criteria: ``SoftTargetCrossEntropy`` / ``LabelSmoothingCrossEntropy``.

Images come out ``(B, 3, H, W)`` float32, normalised with the model's mean/std.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from .classification_config import ClassificationConfig
from .distributed import DistInfo, ShardSampler

__all__ = [
    "build_criterion",
    "build_dataset",
    "build_datasets",
    "build_eval_loader",
    "build_mixup",
    "build_train_loader",
    "data_config_for",
]


def data_config_for(cfg: ClassificationConfig, model: torch.nn.Module) -> dict[str, Any]:
    """The model's timm data config (input size, interpolation, mean, std, crop) with the config's overrides."""
    from timm.data import resolve_data_config

    dc = dict(resolve_data_config(model=model))
    if cfg.img_size is not None:
        dc["input_size"] = (dc["input_size"][0], int(cfg.img_size), int(cfg.img_size))
    for key in ("crop_pct", "interpolation"):
        if getattr(cfg, key) is not None:
            dc[key] = getattr(cfg, key)
    for key in ("mean", "std"):
        if getattr(cfg, key) is not None:
            dc[key] = tuple(getattr(cfg, key))
    return dc


def build_dataset(cfg: ClassificationConfig, split: str, is_training: bool):
    """One split via ``timm.data.create_dataset`` (no transform yet).

    Raises:
        FileNotFoundError: if ``data_root`` is missing; ValueError: if the split holds no image.
    """
    from pathlib import Path

    from timm.data import create_dataset

    if not cfg.dataset and not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data_root={cfg.data_root!r} is not a folder (expected an ImageFolder with "
                                f"{cfg.train_split!r}/ and {cfg.val_split!r}/ class sub-folders)")
    if not cfg.dataset and not (Path(cfg.data_root) / split).is_dir():
        # timm would fall back to data_root itself: train and val would silently be the same images
        raise FileNotFoundError(f"split folder {str(Path(cfg.data_root) / split)!r} does not exist (data_root must "
                                f"hold {cfg.train_split!r}/ and {cfg.val_split!r}/ with one sub-folder per class)")
    ds = create_dataset(cfg.dataset, root=cfg.data_root, split=split, is_training=is_training, download=False)
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of data_root={cfg.data_root!r} holds no image")
    return ds


def _class_to_idx(ds) -> dict | None:
    reader = getattr(ds, "reader", None)
    return getattr(reader, "class_to_idx", None)


def build_datasets(cfg: ClassificationConfig, train: bool = True) -> tuple[object | None, object | None, int]:
    """The train split (``None`` when ``train=False``), the val split (``None`` when ``val_split`` is empty) and
    the number of classes (``cfg.num_classes``, else from the folder classes).

    Raises:
        ValueError: if the train and val splits have different classes or the class count is unknown.
    """
    train_ds = build_dataset(cfg, cfg.train_split, is_training=True) if train else None
    val_ds = build_dataset(cfg, cfg.val_split, is_training=False) if cfg.val_split else None
    if train_ds is None and val_ds is None:
        raise ValueError("no split to build: train=False and val_split is empty")
    classes = _class_to_idx(train_ds if train_ds is not None else val_ds)
    if train_ds is not None and val_ds is not None and classes is not None and _class_to_idx(val_ds) != classes:
        raise ValueError(f"train split classes {sorted(classes)} differ from val split classes "
                         f"{sorted(_class_to_idx(val_ds))}")
    num_classes = cfg.num_classes or (len(classes) if classes else None)
    if not num_classes:
        raise ValueError(f"num_classes could not be read from dataset {cfg.dataset!r}; set num_classes")
    return train_ds, val_ds, int(num_classes)


def build_eval_loader(cfg: ClassificationConfig, val_ds, data_config: dict[str, Any], info: DistInfo) -> DataLoader:
    """Eval transform (resize, centre crop by ``crop_pct``, normalise) and a loader over this rank's shard."""
    from timm.data import create_transform

    val_ds.transform = create_transform(
        data_config["input_size"], is_training=False, crop_pct=data_config.get("crop_pct"),
        crop_mode=data_config.get("crop_mode"), interpolation=data_config["interpolation"],
        mean=data_config["mean"], std=data_config["std"],
    )
    return DataLoader(val_ds, batch_size=cfg.val_batch_size or cfg.batch_size,
                      sampler=ShardSampler(len(val_ds), info.rank, info.world_size), num_workers=cfg.workers,
                      pin_memory=info.device.type == "cuda")


def build_train_loader(cfg: ClassificationConfig, train_ds, data_config: dict[str, Any], info: DistInfo) -> DataLoader:
    """Train transform (timm augmentation) and a loader with a seeded ``DistributedSampler``.

    The sampler drops the last incomplete global batch (every epoch reshuffles, so every image is used over
    the run).

    Raises:
        ValueError: if the split is smaller than one global batch.
    """
    from timm.data import create_transform

    train_ds.transform = create_transform(
        data_config["input_size"], is_training=True, no_aug=cfg.no_aug, scale=tuple(cfg.scale) if cfg.scale else None,
        ratio=tuple(cfg.ratio) if cfg.ratio else None, hflip=cfg.hflip, vflip=cfg.vflip,
        color_jitter=cfg.color_jitter, auto_augment=cfg.aa or None, re_prob=cfg.reprob,
        interpolation=data_config["interpolation"], mean=data_config["mean"], std=data_config["std"],
    )
    if len(train_ds) < cfg.batch_size * info.world_size:
        raise ValueError(f"the training split has {len(train_ds)} images, fewer than one global batch "
                         f"(batch_size={cfg.batch_size} x {info.world_size} processes)")
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      generator=torch.Generator(), num_workers=cfg.workers, pin_memory=info.device.type == "cuda")


def build_mixup(cfg: ClassificationConfig, num_classes: int):
    """timm ``Mixup`` (mixup and/or cutmix, label smoothing folded in), or ``None`` when both are off.

    Raises:
        ValueError: for an odd ``batch_size`` (timm mixes pairs within a batch).
    """
    if not (cfg.mixup > 0 or cfg.cutmix > 0):
        return None
    from timm.data import Mixup

    if cfg.batch_size % 2 and cfg.mixup_mode == "batch":
        raise ValueError(f"batch_size must be even with mixup/cutmix (mixup_mode='batch'), got {cfg.batch_size}")
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                 switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                 num_classes=num_classes)


def build_criterion(cfg: ClassificationConfig, mixup_active: bool) -> torch.nn.Module:
    """Training loss: soft-target CE with mixup, label-smoothing CE with ``smoothing > 0``, else plain CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup_active:
        return SoftTargetCrossEntropy()
    if cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return torch.nn.CrossEntropyLoss()

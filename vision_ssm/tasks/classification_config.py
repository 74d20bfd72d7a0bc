"""The configuration of the classification recipe: one dataclass, YAML presets and the command line built from it.

Every field of :class:`ClassificationConfig` is a command-line flag of ``examples/classification/train.py``
(``batch_size`` -> ``--batch-size``) and a key of the YAML presets in ``examples/classification/configs/``.
Precedence: dataclass default < ``--config`` YAML < flags given on the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ClassificationConfig",
    "build_arg_parser",
    "config_from_args",
    "config_from_mapping",
    "load_config_file",
]


@dataclass
class ClassificationConfig:
    """Everything one classification run needs.

    Attributes:
        data_root: dataset root (an ImageFolder with ``train_split``/``val_split`` sub-folders, or a root timm's
            ``create_dataset`` understands for ``dataset``).
        dataset: timm dataset name (``""`` = ImageFolder, ``"torch/cifar10"``...; nothing is ever downloaded).
        train_split: training split (sub-folder) name.
        val_split: validation split name; ``""`` = no validation.
        model: any timm model name (vision_ssm's models are registered on ``import vision_ssm``).
        model_kwargs: extra ``timm.create_model`` keyword arguments (e.g. ``{"dims": 32}``).
        pretrained: load the model's registered pretrained weights (must be available locally/offline).
        finetune: weights file (``.safetensors``/``.pth``) to start from; its head is replaced by a new one
            (``reset_classifier``) when the class count differs.
        num_classes: number of classes; ``None`` = from the dataset.
        img_size: input side; ``None`` = the model's ``pretrained_cfg`` input size.
        crop_pct, interpolation, mean, std: eval transform / normalisation; ``None`` = the model's cfg.
        drop_rate: head dropout (``None`` = the model's default).
        drop_path_rate: stochastic depth (``None`` = the model's default).
        epochs, warmup_epochs, cooldown_epochs: schedule length in epochs.
        batch_size: batch per process (the global batch is ``batch_size * world_size * accum_steps``).
        val_batch_size: eval batch per process (``None`` = ``batch_size``).
        accum_steps: gradient accumulation: micro-batches per optimizer update.
        opt: timm optimizer name (``create_optimizer_v2``: ``adamw``, ``lamb``, ``sgd``...).
        lr: peak learning rate (for ``lr_base_size`` images, see below).
        lr_base_size: if > 0, ``lr`` is scaled linearly to the global batch: ``lr * global_batch / lr_base_size``.
        weight_decay: decoupled weight decay; 1-D params, biases and the model's ``no_weight_decay()`` get none.
        momentum: SGD momentum.
        layer_decay: layer-wise lr decay (timm, via the model's ``group_matcher``); ``None`` = off.
        sched: timm scheduler name (``create_scheduler_v2``: ``cosine``, ``step``...).
        min_lr, warmup_lr: scheduler floor and warmup start.
        sched_on_updates: step the lr every optimizer update (True) or every epoch (False).
        clip_grad: gradient clipping threshold (``None`` = off); ``clip_mode``: ``norm``, ``value`` or ``agc``.
        smoothing: label smoothing (used when mixup/cutmix is off; with mixup it is folded into the soft targets).
        mixup, cutmix, mixup_prob, mixup_switch_prob, mixup_mode: timm ``Mixup`` settings (both 0 = off).
        no_aug: train with the eval transform (no random crop/flip/colour).
        scale, ratio: RandomResizedCrop ranges; ``hflip``, ``vflip``, ``color_jitter``, ``aa`` (RandAugment string,
            e.g. ``"rand-m9-mstd0.5-inc1"``), ``reprob`` (random erasing): train augmentation.
        model_ema: keep a ``ModelEmaV3`` of the weights (evaluated and saved too); ``model_ema_decay``;
            ``model_ema_warmup``: timm's EMA warmup.
        amp: ``None``/``""`` (fp32), ``"bf16"`` or ``"fp16"`` (with a GradScaler).
        channels_last: NHWC memory format for model and inputs.
        grad_checkpointing: ``model.set_grad_checkpointing(True)``.
        cuda_graph: replay the training forward and backward from CUDA graphs captured at the first batch
            (:class:`~vision_ssm.tasks.cuda_graph.CudaGraphForward`): one CUDA device, no DDP, no gradient
            checkpointing; evaluation stays eager.
        sync_bn: convert BatchNorm to SyncBatchNorm when distributed.
        device: ``"auto"`` (cuda:LOCAL_RANK if available, else cpu), ``"cpu"``, ``"cuda"``...
        workers: DataLoader workers per process.
        seed: seed of model init (same on every rank), of the shuffle and of each epoch's augmentation.
        output: output folder (checkpoints, ``log.csv``, ``curves.png``).
        resume: continue from ``output/last_state.pt`` (+ ``last.safetensors``).
        eval_every: evaluate every N epochs (always after the last).
        progress: tqdm progress bars (rank 0 only).
        published_top1: informational (presets): the published ImageNet-1K top-1 of the recipe.
        notes: informational (presets): where the numbers come from.
    """

    data_root: str = ""
    dataset: str = ""
    train_split: str = "train"
    val_split: str = "val"
    model: str = "test_mambavision"
    model_kwargs: dict = field(default_factory=dict)
    pretrained: bool = False
    finetune: str = ""
    num_classes: int | None = None
    img_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: list | None = None
    std: list | None = None
    drop_rate: float | None = None
    drop_path_rate: float | None = None
    epochs: int = 10
    warmup_epochs: int = 0
    cooldown_epochs: int = 0
    batch_size: int = 64
    val_batch_size: int | None = None
    accum_steps: int = 1
    opt: str = "adamw"
    lr: float = 1e-3
    lr_base_size: int = 0
    weight_decay: float = 0.05
    momentum: float = 0.9
    layer_decay: float | None = None
    sched: str = "cosine"
    min_lr: float = 1e-6
    warmup_lr: float = 1e-6
    sched_on_updates: bool = True
    clip_grad: float | None = None
    clip_mode: str = "norm"
    smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    no_aug: bool = False
    scale: list | None = None
    ratio: list | None = None
    hflip: float = 0.5
    vflip: float = 0.0
    color_jitter: float = 0.4
    aa: str | None = None
    reprob: float = 0.0
    model_ema: bool = False
    model_ema_decay: float = 0.9998
    model_ema_warmup: bool = False
    amp: str | None = None
    channels_last: bool = False
    grad_checkpointing: bool = False
    cuda_graph: bool = False
    sync_bn: bool = False
    device: str = "auto"
    workers: int = 2
    seed: int = 42
    output: str = "runs/classification"
    resume: bool = False
    eval_every: int = 1
    progress: bool = True
    published_top1: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.accum_steps >= 1, "accum_steps", self.accum_steps, "an integer >= 1")
        _check(self.amp in (None, "", "bf16", "fp16"), "amp", self.amp, "None, 'bf16' or 'fp16'")
        _check(self.clip_mode in ("norm", "value", "agc"), "clip_mode", self.clip_mode, "'norm', 'value' or 'agc'")
        _check(self.lr > 0, "lr", self.lr, "a positive float")
        _check(self.eval_every >= 0, "eval_every", self.eval_every, "an integer >= 0")
        _check(self.mixup >= 0 and self.cutmix >= 0, "mixup/cutmix", (self.mixup, self.cutmix), "values >= 0")
        _check(isinstance(self.model_kwargs, dict), "model_kwargs", self.model_kwargs, "a dict")
        if self.cuda_graph and self.grad_checkpointing:
            raise ValueError("cuda_graph=True and grad_checkpointing=True cannot be combined: checkpointing re-runs "
                             "the forward inside the backward, which a captured graph cannot")


def _check(ok: bool, name: str, got: Any, expects: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expects}, got {got!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(ClassificationConfig)}


def load_config_file(path: str | Path) -> dict:
    """Read a YAML preset into a dict of :class:`ClassificationConfig` fields.

    Raises:
        ValueError: if the file is not a YAML mapping or names keys that are not config fields.
    """
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a YAML mapping, got {type(data).__name__}")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValueError(f"config file {path} has unknown keys {unknown}; valid keys are the fields of "
                         "ClassificationConfig (the flags of train.py with '_' for '-')")
    return data


def _parse_type(annotation: str):
    """argparse ``type`` / action for a field annotation (annotations are strings here)."""
    base = annotation.replace(" | None", "")
    if base == "bool":
        return "bool"
    if base in ("dict", "list"):
        return json.loads
    return {"int": int, "float": float, "str": str}[base]


def build_arg_parser(description: str = "") -> argparse.ArgumentParser:
    """An ``argparse`` parser with ``--config`` and one flag per config field (``--batch-size`` ...).

    Booleans are ``--flag`` / ``--no-flag`` (fields named ``no_*``, like ``no_aug``, are a plain ``--no-aug``);
    dicts and lists take JSON (``--model-kwargs '{"dims": 32}'``);
    ``--amp none`` (or any field set to ``none``) means ``None``. Unset flags stay ``argparse.SUPPRESS`` so a
    YAML preset can fill them.
    """
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML preset (keys = the flags below with '_' for '-')")
    hints = typing.get_type_hints(ClassificationConfig)
    for name, f in _FIELDS.items():
        flag = "--" + name.replace("_", "-")
        kind = _parse_type(str(f.type))
        help_ = f"(default: {f.default if f.default is not dataclasses.MISSING else f.default_factory()})"
        if kind == "bool" and name.startswith("no_"):
            # BooleanOptionalAction would read "--no-aug" as "aug off" = no_aug False: a plain switch instead
            p.add_argument(flag, dest=name, action="store_const", const=True, default=argparse.SUPPRESS, help=help_)
        elif kind == "bool":
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        else:
            optional = type(None) in typing.get_args(hints[name])
            p.add_argument(flag, dest=name, type=_nullable(kind) if optional else kind, default=argparse.SUPPRESS,
                           help=help_)
    return p


def _nullable(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def config_from_args(argv: list[str] | None = None, description: str = "") -> ClassificationConfig:
    """Parse the command line (with an optional ``--config`` YAML underneath it) into a config."""
    return config_from_mapping(vars(build_arg_parser(description).parse_args(argv)))


def config_from_mapping(args: dict) -> ClassificationConfig:
    """A config from parsed flags (a dict; its ``"config"`` entry, if set, names a YAML preset under them)."""
    args = dict(args)
    path = args.pop("config", None)
    values = load_config_file(path) if path else {}
    values.update(args)
    return ClassificationConfig(**values)

"""The image-classification recipe on timm's training stack, single process or under torchrun (DDP).

Any timm model name works (vision_ssm's VMamba / MambaVision models are registered on import). Pieces:

* data: :mod:`vision_ssm.tasks.classification_data` (``create_dataset``, ``create_transform``, ``Mixup``,
  ``DistributedSampler`` with ``set_epoch``);
* optimizer: ``timm.optim.create_optimizer_v2`` (honours the model's ``no_weight_decay()`` fnmatch patterns,
  1-D parameters and biases get no decay); scheduler: ``timm.scheduler.create_scheduler_v2`` with warmup,
  stepped per update (``sched_on_updates``) or per epoch;
* ``timm.utils.ModelEmaV3``, AMP (bf16, or fp16 with a ``GradScaler``), gradient clipping (``timm.utils
  .dispatch_clip_grad``), channels_last, gradient checkpointing, gradient accumulation (``no_sync`` on the
  micro-batches that do not step), optional ``SyncBatchNorm``; ``cuda_graph``: the training forward and backward
  replayed from CUDA graphs (:class:`~vision_ssm.tasks.cuda_graph.CudaGraphForward`; one GPU, no DDP);
* ``torch.nn.parallel.DistributedDataParallel`` when ``WORLD_SIZE > 1`` (NCCL on CUDA, Gloo on CPU); only rank 0
  logs, draws progress bars and writes files; metrics are exact sums over all ranks.

Seeding: the model is initialised from ``seed`` (identical on every rank); epoch ``e`` reseeds torch, numpy and
``random`` with a function of ``(seed, rank, e)``, and the shuffle is ``DistributedSampler(seed=seed)``
advanced by ``set_epoch(e)``. A resumed run therefore continues exactly as the uninterrupted one would.

Files: see :mod:`vision_ssm.tasks.classification_io`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .classification_config import ClassificationConfig
from .classification_data import (
    build_criterion,
    build_datasets,
    build_eval_loader,
    build_mixup,
    build_train_loader,
    data_config_for,
)
from .classification_io import (
    load_finetune_weights,
    load_weights,
    plot_curves,
    save_state,
    save_weights,
    write_json,
    write_log_csv,
)
from .cuda_graph import CudaGraphForward
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup_distributed, init_distributed

__all__ = ["ClassificationConfig", "build_model", "build_optimizer", "evaluate", "train", "validate"]


def _finite_loss(pending: tuple[torch.Tensor, int, int] | None) -> float | None:
    """The value of the loss in ``(loss, epoch, batch)`` (``None`` for ``None``).

    Raises:
        FloatingPointError: the loss is NaN or infinite.
    """
    if pending is None:
        return None
    loss, epoch, batch = pending
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite loss {value} at epoch {epoch + 1}, batch {batch}; the epoch's "
                                 "checkpoint was not written")
    return value


def _seed_all(seed: int) -> None:
    seed = seed % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, rank: int, epoch: int) -> int:
    return seed + 1_000_003 * (epoch + 1) + 7919 * rank


def build_model(cfg: ClassificationConfig, num_classes: int) -> nn.Module:
    """``timm.create_model(cfg.model, ...)`` with the config's head size, dropout and ``model_kwargs``.

    With ``cfg.finetune`` the checkpoint is loaded and the head replaced when the class count differs
    (:func:`~vision_ssm.tasks.classification_io.load_finetune_weights`).
    """
    import timm

    import vision_ssm  # noqa: F401  (registers the models)

    kwargs = dict(cfg.model_kwargs)
    for key in ("drop_rate", "drop_path_rate"):
        if getattr(cfg, key) is not None:
            kwargs[key] = getattr(cfg, key)
    model = timm.create_model(cfg.model, pretrained=cfg.pretrained, num_classes=num_classes, **kwargs)
    if cfg.finetune:
        load_finetune_weights(model, cfg.finetune, num_classes)
    return model


def build_optimizer(cfg: ClassificationConfig, model: nn.Module, global_batch: int) -> torch.optim.Optimizer:
    """``timm.optim.create_optimizer_v2`` on the (unwrapped) model.

    timm puts 1-D parameters, biases and every name matching the model's ``no_weight_decay()`` fnmatch patterns
    (vision_ssm's SSM ``A_log(s)``, ``D(s)``, ``dt_projs_bias``...) into a group with weight decay 0. The lr is
    ``cfg.lr``, scaled by ``global_batch / cfg.lr_base_size`` when ``lr_base_size > 0``.
    """
    from timm.optim import create_optimizer_v2

    lr = cfg.lr * global_batch / cfg.lr_base_size if cfg.lr_base_size > 0 else cfg.lr
    return create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                               layer_decay=cfg.layer_decay)


_AMP_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(info: DistInfo, amp: str | None):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(info.device.type, dtype=_AMP_DTYPES[amp])


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, info: DistInfo, amp: str | None = None, channels_last: bool = False,
             progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Loss, top-1 and top-5 (%) over the whole loader, summed exactly over all ranks.

    Args:
        model: classifier returning ``(B, num_classes)`` logits for ``(B, 3, H, W)`` images.
        loader: evaluation loader (each rank its shard).
        info: process placement.
        amp: ``None``, ``"bf16"`` or ``"fp16"``.
        channels_last: feed NHWC-strided inputs.
        progress: show a tqdm bar (rank 0).
        desc: bar label.

    Returns:
        ``{"loss", "top1", "top5", "n"}``; top-5 is top-min(5, classes).
    """
    from timm.utils import accuracy
    from tqdm.auto import tqdm

    model.eval()
    loss_sum = c1 = c5 = n = 0.0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not (progress and info.is_main)):
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(info, amp):
            out = model(x)
        out = out.float()
        k5 = min(5, out.shape[1])
        a1, a5 = accuracy(out, y, topk=(1, k5))
        b = x.shape[0]
        loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
        c1 += a1.item() * b / 100.0
        c5 += a5.item() * b / 100.0
        n += b
    loss_sum, c1, c5, n = all_reduce_sum([loss_sum, c1, c5, n], info)
    if n == 0:
        raise ValueError("the evaluation loader yielded no image")
    return {"loss": loss_sum / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "n": int(n)}


def _prepare(cfg: ClassificationConfig, info: DistInfo):
    """Model (seeded, identical on every rank) and the train / val loaders with the model's data config."""
    train_ds, val_ds, num_classes = build_datasets(cfg)
    _seed_all(cfg.seed)
    model = build_model(cfg, num_classes)
    data_config = data_config_for(cfg, model)
    train_loader = build_train_loader(cfg, train_ds, data_config, info)
    val_loader = build_eval_loader(cfg, val_ds, data_config, info) if val_ds is not None else None
    return model, data_config, train_loader, val_loader, num_classes


def train(cfg: ClassificationConfig) -> dict:
    """Train (and evaluate) one model; see the module docstring. Run under torchrun for DDP.

    Returns:
        ``{"top1", "top5", "ema_top1", "best_top1", "best_epoch", "epochs", "train_time_s", "history",
        "num_classes", "world_size"}`` (the same on every rank).
    """
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3, dispatch_clip_grad
    from tqdm.auto import tqdm

    info = init_distributed(cfg.device)
    try:
        out = Path(cfg.output)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
        model, data_config, train_loader, val_loader, num_classes = _prepare(cfg, info)
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if cfg.sync_bn and info.distributed:
            if info.device.type == "cpu":
                raise ValueError("sync_bn=True needs GPUs (torch's SyncBatchNorm does not run on CPU); got device "
                                 f"{info.device}")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(info.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)

        optimizer = build_optimizer(cfg, model, cfg.batch_size * info.world_size * cfg.accum_steps)
        updates_per_epoch = math.ceil(len(train_loader) / cfg.accum_steps)
        scheduler, num_epochs = create_scheduler_v2(
            optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
            cooldown_epochs=cfg.cooldown_epochs, min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr,
            step_on_epochs=not cfg.sched_on_updates, updates_per_epoch=updates_per_epoch,
        )
        scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.amp == "fp16")
        ema = ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup) if cfg.model_ema else None

        start_epoch, num_updates, history = 0, 0, []
        best = {"top1": -1.0, "epoch": -1, "source": ""}
        if cfg.resume:
            state_path = out / "last_state.pt"
            if not state_path.is_file():
                raise FileNotFoundError(f"resume=True but {state_path} does not exist")
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            load_weights(model, out / "last.safetensors")
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            if ema is not None:
                load_weights(ema.module, out / "last_ema.safetensors")
            start_epoch, num_updates = int(state["epoch"]), int(state["num_updates"])
            history, best = list(state["history"]), dict(state["best"])
            if cfg.sched_on_updates:
                scheduler.step_update(num_updates)
            else:
                scheduler.step(start_epoch)

        mixup = build_mixup(cfg, num_classes)
        criterion = build_criterion(cfg, mixup is not None).to(info.device)
        ddp = model
        if cfg.cuda_graph and (info.device.type != "cuda" or info.distributed):
            raise ValueError("cuda_graph=True needs one CUDA device and no DDP (world size 1); got device "
                             f"{info.device}, world size {info.world_size}")
        if info.distributed:
            ids = [info.device.index] if info.device.type == "cuda" else None
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if info.is_main:
            cfg_dict = dataclasses.asdict(cfg)
            _write_yaml(cfg_dict, out / "config.yaml")

        # the training forward and backward replayed from CUDA graphs (captured at the first batch)
        forward = CudaGraphForward(model, _AMP_DTYPES[cfg.amp or None]) if cfg.cuda_graph else ddp
        t_start = time.time()
        for epoch in range(start_epoch, num_epochs):
            _seed_all(_epoch_seed(cfg.seed, info.rank, epoch))
            train_loader.sampler.set_epoch(epoch)
            train_loader.generator.manual_seed(_epoch_seed(cfg.seed, info.rank, epoch))
            ddp.train()
            loss_sum, seen, pending = torch.zeros((), device=info.device), 0, None
            t0 = time.time()
            n_batches = len(train_loader)
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{num_epochs}", leave=False,
                       disable=not (cfg.progress and info.is_main))
            for i, (x, y) in enumerate(bar):
                x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
                if mixup is not None:
                    x, y = mixup(x, y)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                group_start = (i // cfg.accum_steps) * cfg.accum_steps
                group_size = min(cfg.accum_steps, n_batches - group_start)
                step_now = i == group_start + group_size - 1
                sync = contextlib.nullcontext() if (step_now or not info.distributed) else ddp.no_sync()
                with sync:
                    with _autocast(info, cfg.amp):
                        loss = criterion(forward(x), y)
                    scaler.scale(loss / group_size).backward()
                # the host waits for the previous step's loss, not this one's: this step is queued behind it, so
                # the GPU never runs dry; the epoch's loss is summed on the device
                shown = _finite_loss(pending)
                pending = (loss.detach(), epoch, i)
                loss_sum += loss.detach().float() * x.shape[0]
                seen += x.shape[0]
                if step_now:
                    if cfg.clip_grad is not None:
                        scaler.unscale_(optimizer)
                        dispatch_clip_grad(model.parameters(), value=cfg.clip_grad, mode=cfg.clip_mode)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    num_updates += 1
                    if ema is not None:
                        ema.update(model, step=num_updates)
                    scheduler.step_update(num_updates=num_updates)
                    if shown is not None:
                        bar.set_postfix(loss=f"{shown:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            bar.close()
            _finite_loss(pending)
            if info.device.type == "cuda":
                torch.cuda.synchronize(info.device)
            epoch_time = time.time() - t0
            loss_sum, seen = all_reduce_sum([loss_sum.item(), seen], info)
            scheduler.step(epoch + 1)
            row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / seen,
                   "epoch_time_s": epoch_time, "train_img_per_s": seen / max(epoch_time, 1e-9)}
            last = epoch + 1 == num_epochs
            if val_loader is not None and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
                m = evaluate(model, val_loader, info, cfg.amp, cfg.channels_last, cfg.progress, "val")
                row.update(val_loss=m["loss"], top1=m["top1"], top5=m["top5"])
                candidates = [("model", m["top1"], model)]
                if ema is not None:
                    e = evaluate(ema.module, val_loader, info, cfg.amp, cfg.channels_last, cfg.progress, "val ema")
                    row.update(ema_top1=e["top1"], ema_top5=e["top5"])
                    candidates.append(("ema", e["top1"], ema.module))
                source, top1, weights = max(candidates, key=lambda c: c[1])
                if top1 > best["top1"]:
                    best = {"top1": top1, "epoch": epoch + 1, "source": source}
                    if info.is_main:
                        save_weights(weights, out / "best.safetensors")
                        write_json(best, out / "best.json")
            history.append(row)
            if info.is_main:
                _save_checkpoint(out, model, ema, optimizer, scaler, epoch + 1, num_updates, history, best, cfg)
                write_log_csv(history, out / "log.csv")
                plot_curves(history, out / "curves.png", title=cfg.model)
                print(_format_row(row), flush=True)
            barrier(info)
        last_row = history[-1] if history else {}
        return {"top1": last_row.get("top1"), "top5": last_row.get("top5"), "ema_top1": last_row.get("ema_top1"),
                "best_top1": best["top1"] if best["epoch"] > 0 else None, "best_epoch": best["epoch"],
                "epochs": num_epochs, "train_time_s": time.time() - t_start, "history": history,
                "num_classes": num_classes, "world_size": info.world_size}
    finally:
        cleanup_distributed()


def _save_checkpoint(out: Path, model, ema, optimizer, scaler, epoch: int, num_updates: int, history: list,
                     best: dict, cfg: ClassificationConfig) -> None:
    save_weights(model, out / "last.safetensors")
    if ema is not None:
        save_weights(ema.module, out / "last_ema.safetensors")
    save_state({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "num_updates": num_updates, "history": history, "best": best,
                "config": _plain(dataclasses.asdict(cfg))}, out / "last_state.pt")


def _plain(obj):
    """Config as plain lists/dicts/scalars (what ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _write_yaml(obj: dict, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(_plain(obj), sort_keys=False))


def _format_row(row: dict) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    if "top1" in row:
        parts += [f"val top-1 {row['top1']:.2f}%", f"top-5 {row['top5']:.2f}%"]
    if "ema_top1" in row:
        parts.append(f"EMA top-1 {row['ema_top1']:.2f}%")
    parts.append(f"{row['train_img_per_s']:.0f} img/s")
    return " | ".join(parts)


def validate(cfg: ClassificationConfig, checkpoint: str | Path) -> dict[str, float]:
    """Evaluate weights (``*.safetensors`` of :func:`train`, or any timm checkpoint) on ``cfg.val_split``.

    Runs under torchrun too (each rank evaluates its shard; the metrics are exact sums).

    Returns:
        ``{"loss", "top1", "top5", "n"}``.
    """
    if not cfg.val_split:
        raise ValueError("validate needs a val_split (got an empty one)")
    info = init_distributed(cfg.device)
    try:
        _, val_ds, num_classes = build_datasets(cfg, train=False)
        model = build_model(dataclasses.replace(cfg, finetune="", pretrained=False), num_classes)
        loaded = load_finetune_weights(model, checkpoint, num_classes)
        if loaded["new_head"]:
            raise ValueError(f"checkpoint {str(checkpoint)!r} has a {loaded['checkpoint_classes']}-class head "
                             f"but the val split has {num_classes} classes")
        val_loader = build_eval_loader(cfg, val_ds, data_config_for(cfg, model), info)
        model.to(info.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        return evaluate(model, val_loader, info, cfg.amp, cfg.channels_last, cfg.progress, "validate")
    finally:
        cleanup_distributed()

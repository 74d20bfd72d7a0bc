"""Run the demo's defaults on one data setting and report per class and per defect type.

Settings: ``demo`` (the demo's own generator and test set), ``tuning`` and ``heldout``
(:mod:`vision_ssm.data.texture_shift`, different seeds and disjoint defect kinds). Defaults are chosen
on ``tuning`` only; ``demo`` and ``heldout`` are reported. Extra arguments go to the demo, e.g.::

    python benchmarks/anomaly_settings.py heldout --output runs/heldout
    python benchmarks/anomaly_settings.py tuning --output runs/t_lr --lr 0.002

Writes ``<output>/report.json`` (demo results, per-defect results, wall time) and ``report.md``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    from vision_ssm.data.texture_demo import build_texture_demo
    from vision_ssm.data.texture_shift import HELDOUT_SETTING, TUNING_SETTING, build_texture_shift
    from vision_ssm.tasks.anomaly import TrainConfig, build_model
    from vision_ssm.tasks.anomaly_report import evaluate_by_defect, markdown_table
    from vision_ssm.tasks.demo import add_demo_arguments, run_demo
    from vision_ssm.tasks.encoder_setup import encoder_normalization

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("setting", choices=["demo", "tuning", "heldout"])
    p.add_argument("--reuse", action="store_true",
                   help="do not train: report on OUTPUT's last.safetensors (e.g. of `python -m vision_ssm demo`)")
    add_demo_arguments(p)
    args = p.parse_args(argv)
    out = Path(args.output)
    data_dir = out / "data" if args.reuse and args.setting == "demo" else (
        out.parent / f"data_{args.setting}_{args.data_size}")
    t0 = time.perf_counter()
    if args.setting == "demo":
        data = build_texture_demo(data_dir, n_train=args.n_train, n_test_good=args.n_test_good,
                                  n_test_bad=args.n_test_bad, size=args.data_size)
    else:
        setting = TUNING_SETTING if args.setting == "tuning" else HELDOUT_SETTING
        data = build_texture_shift(data_dir, size=args.data_size, **setting)
    data_s = time.perf_counter() - t0
    args.data_root = str(data)
    t1 = time.perf_counter()
    if args.reuse:
        results = json.loads((out / "results.json").read_text())
    else:
        results = run_demo(args)
    train_s = time.perf_counter() - t1

    from vision_ssm.data.anomaly_folders import AnomalyDataset

    cfg_d = json.loads((out / "config.json").read_text())
    cfg = TrainConfig(**{k: v for k, v in cfg_d.items() if k in TrainConfig.__dataclass_fields__})
    cfg.encoder_init = None  # the trained weights are loaded below
    model = build_model(cfg, torch.device("cpu"))
    from safetensors.torch import load_model

    load_model(model, str(out / "last.safetensors"), strict=True)
    test = AnomalyDataset(data, "mvtec", "test", cfg.classes, cfg.image_size, *encoder_normalization(model))
    by_defect = evaluate_by_defect(model, test)
    report = {"setting": args.setting, "results": results, "by_defect": by_defect, "data_seconds": round(data_s, 1),
              "demo_seconds": None if args.reuse else round(train_s, 1), "model": cfg.model, "args": vars(args),
              "machine": f"{platform.machine()} {platform.processor()}".strip(),
              "torch_threads": torch.get_num_threads()}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    kinds = {k: v for k, v in by_defect.items() if "/" not in k}
    timing = "reused run" if args.reuse else f"demo {train_s:.0f} s (+ data {data_s:.0f} s)"
    md = (f"setting {args.setting}: {timing}, model {cfg.model}\n\n"
          + markdown_table(results) + "\n\n" + markdown_table(kinds, first="defect") + "\n\n"
          + markdown_table({k: v for k, v in by_defect.items() if "/" in k}, first="class/defect"))
    (out / "report.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

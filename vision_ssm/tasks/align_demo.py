"""``python -m vision_ssm demo-align``: what the second modality adds, measured on CPU in minutes.

Builds the two-modality texture set (:func:`~vision_ssm.data.rgbx_synthetic.build_align_demo`: scikit-image
photographs as RGB, surface normals of a relief consistent with the texture as the auxiliary modality; test
defects visible in the RGB only, in the normals only, or in both), trains the same CPU-sized MambaAlign twice
with the ordinary recipe (:func:`~vision_ssm.tasks.mambaalign.train_align`): once on RGB + normals, once on
RGB alone (``aux_chans=0``), and prints the seven metrics per defect kind for both. Nothing is downloaded.

The defaults (:data:`ALIGN_DEMO_DEFAULTS`) were chosen on a tuning setting (``--seed 1 --radius 0.16 0.28``):
another seed for every crop and defect, and larger defects than the reported set (``--seed 0 --radius 0.12
0.22``); ``docs/models/mambaalign.md`` gives both tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

__all__ = ["ALIGN_DEMO_DEFAULTS", "ALIGN_DEMO_MODEL_KWARGS", "add_align_demo_arguments", "run_align_demo"]

#: The demo's model: ``mambaalign_resnet18`` narrowed to ResNet channels (16, 32, 64, 128), trained from scratch
#: (no offline weights exist for ResNet-18), so the backbone learns at the full learning rate. The ``chunked``
#: scan backend: at these tiny maps (8×8 down to 2×2 tokens) the automatic choice, ``numba``, measured 20–40×
#: slower per training step on CPU (thread start-up per call dominates).
ALIGN_DEMO_MODEL_KWARGS = {
    "backend": "chunked", "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 16},
    "pmm_depths": [1, 1, 1], "d_state": 4, "ssm_cfg": {"expand": 1}, "cmi_dim": 32, "cmi_state": 8,
    "fused_dim": 32, "decoder_dim": 16, "head_hidden": 32, "backbone_lr_mult": 1.0,
}
#: Training and data settings of the demo (chosen on the tuning setting, see the module docstring).
ALIGN_DEMO_DEFAULTS = {"epochs": 15, "batch_size": 16, "lr": 2e-3, "image_size": 64, "n_train": 48,
                       "n_test_good": 15, "n_test_bad": 10, "synth_std": 0.5, "synth_noise": "mixed",
                       "synth_prob": 0.5}


def add_align_demo_arguments(p: argparse.ArgumentParser) -> None:
    """Add the demo's command-line options to a parser."""
    d = ALIGN_DEMO_DEFAULTS
    p.add_argument("--output", default="runs/demo_align", help="output folder (data, both runs, report)")
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--image-size", type=int, default=d["image_size"])
    p.add_argument("--n-train", type=int, default=d["n_train"], help="normal training crops per texture")
    p.add_argument("--n-test-good", type=int, default=d["n_test_good"], help="normal test crops per texture")
    p.add_argument("--n-test-bad", type=int, default=d["n_test_bad"], help="test crops per texture and defect kind")
    p.add_argument("--radius", type=float, nargs=2, default=(0.12, 0.22), metavar=("MIN", "MAX"),
                   help="defect radius range as a fraction of the crop (reported set: 0.12 0.22; tuning: 0.16 0.28)")
    p.add_argument("--synth-std", type=float, default=d["synth_std"], help="std of the synthetic perturbations")
    p.add_argument("--synth-noise", default=d["synth_noise"], choices=["white", "smooth", "mixed"])
    p.add_argument("--synth-prob", type=float, default=d["synth_prob"])
    p.add_argument("--no-modality-mix", action="store_true",
                   help="perturb both modalities of every synthetic sample (upstream) instead of RGB / aux / both")
    p.add_argument("--image-score", default="head", choices=["head", "map_max"])
    p.add_argument("--model-kwargs", default=json.dumps(ALIGN_DEMO_MODEL_KWARGS), help="JSON for timm.create_model")
    p.add_argument("--only", choices=["rgbx", "rgb"], default=None, help="train only one of the two models")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a model's finished run in OUTPUT/<rgbx|rgb> when its config.json matches (e.g. the two "
                        "models trained in parallel with --only)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: at 64x64 the per-operation overhead dominates, and on a busy "
                        "machine two threads measured several times slower than one)")
    p.add_argument("--seed", type=int, default=0, help="data seed (reported set: 0; tuning: 1)")
    p.add_argument("--train-seed", type=int, default=42)
    p.add_argument("--no-progress", action="store_true")


def _table(rows: dict[str, dict[str, float]]) -> str:
    from .anomaly_report import markdown_table

    return markdown_table(rows, keys=("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap",
                                      "pixel_f1_max", "aupro", "mad"), first="defect kind / model")


def _same_config(cfg, path: Path) -> bool:
    from dataclasses import asdict

    if not path.exists():
        return False
    saved = json.loads(path.read_text())
    now = json.loads(json.dumps(asdict(cfg), default=str))
    keys = set(now) - {"classes", "progress"}
    return all(saved.get(k) == now[k] for k in keys)


def run_align_demo(args: argparse.Namespace) -> dict:
    """Build the data, train RGB + normals and RGB-only, print and save the per-kind table.

    Returns:
        ``{"rgbx": by_defect, "rgb": by_defect, "table": markdown, "info": {...}}``.
    """
    from .encoder_setup import require_anomaly_extra

    require_anomaly_extra("python -m vision_ssm demo-align")
    import torch

    from ..data.rgbx_synthetic import ALIGN_DEFECTS, build_align_demo
    from .mambaalign import AlignConfig, train_align
    from .mambaalign_losses import SynthConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    t0 = time.perf_counter()
    data = build_align_demo(out / f"data_seed{args.seed}", n_train=args.n_train, n_test_good=args.n_test_good,
                            n_test_bad=args.n_test_bad, size=args.image_size, radius=tuple(args.radius),
                            seed=args.seed)
    print(f"two-modality texture data in {data} ({time.perf_counter() - t0:.1f}s)")
    runs, walls = {}, {}
    for name in ("rgbx", "rgb"):
        if args.only and args.only != name:
            continue
        t1 = time.perf_counter()
        synth = SynthConfig(prob=args.synth_prob, std=args.synth_std, noise=args.synth_noise,
                            modality_mix=not args.no_modality_mix)
        cfg = AlignConfig(data_root=str(data), layout="rgbx", aux_kind="normals", folders={"aux_folder": "normals"},
                          rgb_only=name == "rgb", model="mambaalign_resnet18",
                          model_kwargs=json.loads(args.model_kwargs),
                          image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          synth=synth, image_score=args.image_score, output=str(out / name), device=args.device,
                          seed=args.train_seed, num_heatmaps=6, progress=not args.no_progress)
        print(f"\n== {'RGB + normals' if name == 'rgbx' else 'RGB only'} ==")
        done = Path(cfg.output) / "results_by_defect.json"
        if args.reuse and done.exists() and _same_config(cfg, Path(cfg.output) / "config.json"):
            runs[name] = json.loads(done.read_text())
            print(f"reusing the finished run in {cfg.output}")
            continue
        runs[name] = train_align(cfg)["by_defect"]
        walls[name] = round(time.perf_counter() - t1, 1)
    rows = {}
    for kind in ALIGN_DEFECTS:
        for name, label in (("rgbx", "RGB + normals"), ("rgb", "RGB only")):
            if name in runs:
                rows[f"{kind} / {label}"] = runs[name][kind]
    table = _table(rows)
    wall = time.perf_counter() - t0
    info = {"wall_seconds": round(wall, 1), "train_eval_seconds": walls,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2),
            "seed": args.seed, "radius": list(args.radius), "epochs": args.epochs, "image_score": args.image_score}
    (out / f"demo_align_seed{args.seed}.md").write_text(table + "\n")
    (out / f"demo_align_seed{args.seed}.json").write_text(json.dumps({"rows": rows, "info": info}, indent=2))
    print("\n" + table)
    print(f"\ndemo finished in {wall / 60:.1f} min (load average {info['load_average_1min']}); "
          f"heatmaps in {out}/rgbx/heatmaps and {out}/rgb/heatmaps")
    return {**runs, "table": table, "info": info}

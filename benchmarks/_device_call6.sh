#!/usr/bin/env bash
# device session helper: anchor build (background), fused-SS2D GPU tests, tables, model throughput.
(MAX_JOBS=12 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1) &
timeout 150 python3 -m pytest -q -m gpu tests/triton -x -p no:cacheprovider -k "ss2d or determin or inference" 2>&1 | tail -2
wait
timeout 240 python3 benchmarks/gpu_scan.py --json "$OUT/scan.json" > "$OUT/scan.log" 2>&1; tail -11 "$OUT/scan.log"
timeout 200 python3 benchmarks/gpu_models.py --backends triton,mamba_ssm --json "$OUT/models.json" > "$OUT/models.log" 2>&1
tail -8 "$OUT/models.log"

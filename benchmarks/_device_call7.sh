#!/usr/bin/env bash
# device session helper: full GPU tests, training-time profile, training throughput re-run.
(MAX_JOBS=12 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1) &
timeout 200 python3 -m pytest -q -m gpu tests/triton -p no:cacheprovider 2>&1 | tail -2
wait
timeout 60 python3 -m pytest -q -m gpu tests -p no:cacheprovider --deselect tests/triton 2>&1 | tail -2
timeout 120 python3 benchmarks/_profile_model.py vmamba_tiny_s1l8 64 2>&1 | tail -24
timeout 150 python3 benchmarks/gpu_models.py --models vmamba_tiny_s1l8,convnext_tiny --backends triton,mamba_ssm \
  --json "$OUT/models.json" > "$OUT/models.log" 2>&1; tail -4 "$OUT/models.log"

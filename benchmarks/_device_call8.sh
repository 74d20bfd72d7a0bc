#!/usr/bin/env bash
# device session helper: all GPU tests, model throughput (both backends), training-step profile.
(MAX_JOBS=12 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1) &
timeout 200 python3 -m pytest -q -m gpu tests/triton -p no:cacheprovider 2>&1 | tail -2
wait
timeout 60 python3 -m pytest -q -m gpu tests -p no:cacheprovider --deselect tests/triton 2>&1 | tail -2
timeout 240 python3 benchmarks/gpu_models.py --backends triton,mamba_ssm --json "$OUT/models.json" > "$OUT/models.log" 2>&1
tail -8 "$OUT/models.log"
timeout 100 python3 benchmarks/_profile_model.py vmamba_tiny_s1l8 64 2>&1 | tail -14

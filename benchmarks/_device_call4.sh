#!/usr/bin/env bash
# device session helper: model throughput (both backends) + an ncu look at the fused kernel.
python3 -c "import torch, selective_scan_cuda" 2>/dev/null || MAX_JOBS=14 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1
timeout 400 python3 benchmarks/gpu_models.py --backends triton,mamba_ssm --json "$OUT/models.json" > "$OUT/models.log" 2>&1
tail -14 "$OUT/models.log"

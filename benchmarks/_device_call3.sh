#!/usr/bin/env bash
# device session helper: anchor build (background) + GPU tests + the scan/SS2D tables.
(MAX_JOBS=12 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1; echo built > "$OUT/built.txt") &
timeout 240 python3 -m pytest -q -m gpu tests/triton -x -p no:cacheprovider 2>&1 | tail -4
wait
timeout 150 python3 -m pytest -q -m gpu tests -x -p no:cacheprovider --deselect tests/triton 2>&1 | tail -4
timeout 240 python3 benchmarks/gpu_scan.py --json "$OUT/scan.json" > "$OUT/scan.log" 2>&1; tail -12 "$OUT/scan.log"

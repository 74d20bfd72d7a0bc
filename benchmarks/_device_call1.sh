#!/usr/bin/env bash
# device session helper (not part of the library): build the mamba-ssm anchor in the background,
# run the GPU tests of the triton backend, then time the tile configurations.
set -x
nvidia-smi -L
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"
(MAX_JOBS=8 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1;
 so=$(python3 -c "import selective_scan_cuda as s; print(s.__file__)" 2>/dev/null) && cp "$so" "$OUT/" && ls -la "$OUT") &
timeout 200 python3 -m pytest -q -m gpu tests/triton -x -p no:cacheprovider 2>&1 | tail -8
timeout 360 python3 benchmarks/gpu_scan.py --tune scan,ss2d --only none --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1; grep -v "^tune " "$OUT/tune.log" | tail -20
python3 - <<'PY'
import json, os
r = json.load(open(os.path.join(os.environ["OUT"], "tune.json")))
for kind in ("tune_scan", "tune_ss2d"):
    rows = r.get(kind, [])
    for shape in sorted({tuple(x["shape"]) for x in rows}):
        rs = [x for x in rows if tuple(x["shape"]) == shape]
        bf = min(rs, key=lambda x: x["fwd"]); bb = min(rs, key=lambda x: x["fwdbwd"])
        print(kind, shape, "best fwd", {k: bf[k] for k in ("T", "BD", "nw", "ksplit") if k in bf}, round(bf["fwd"], 3),
              "| best f+b", {k: bb[k] for k in ("T", "BD", "nw", "ksplit") if k in bb}, round(bb["fwdbwd"], 3))
PY
wait

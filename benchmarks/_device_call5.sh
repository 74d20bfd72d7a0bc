#!/usr/bin/env bash
# device session helper: ncu of the fused SS2D kernels on channel-last inputs (+ the 1-D kernels).
timeout 100 python3 -m pytest -q -m gpu tests/triton/test_triton_gpu.py -k inference_mode -p no:cacheprovider 2>&1 | tail -2
for cfg in "ss2d_cl 1 grad" "scan 1 grad" "ss2d_cl 0 grad" "scan 0 grad"; do
  tag=${cfg// /_}
  timeout 150 ncu --clock-control none --kernel-name regex:"_scan_(fwd|bwd)" --launch-skip 2 --launch-count 2 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats python3 benchmarks/_profile.py $cfg > "$OUT/ncu_$tag.txt" 2>&1
  echo "== $cfg"; grep -E "^  _scan|^\s+(Duration|DRAM Throughput|Compute \(SM\) Throughput|L1/TEX Hit Rate|L2 Hit Rate|Registers Per Thread|Achieved Occupancy|Warp Cycles Per Issued Instruction|Grid Size|Local Memory Spilling)" "$OUT/ncu_$tag.txt" | awk '{$1=$1};1' | cut -c1-60 | tr '\n' ';'; echo
done
timeout 120 nsys --version >/dev/null 2>&1; python3 - <<'PY'
import torch, math, sys
sys.path.insert(0, "benchmarks")
from gpu_scan import make_inputs
from vision_ssm.ops import get_directions, ss2d_scan
Bt, K, Dm, L, N = 128, 4, 96, 3136, 1
inp = make_inputs(Bt, K, Dm, L, N, torch.bfloat16)
x = inp["x"].transpose(1, 2).contiguous().transpose(1, 2)
d = inp["delta"].permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2)
dirs = get_directions("sweep", 56, 56, 4, "cuda")
with torch.no_grad():
    for _ in range(3):
        ss2d_scan(x, d, inp["A"], inp["B"], inp["C"], inp["D"], inp["bias"], dirs, True, backend="triton")
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            ss2d_scan(x, d, inp["A"], inp["B"], inp["C"], inp["D"], inp["bias"], dirs, True, backend="triton")
        torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=60))
PY

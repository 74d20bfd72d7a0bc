#!/usr/bin/env bash
# device session helper: mamba-ssm anchor build (background), ncu profiles, then the benchmark tables.
(MAX_JOBS=12 bash .mamba/build.sh > "$OUT/mamba_build.log" 2>&1
 python3 -c "import torch, selective_scan_cuda as s; print(s.__file__)" > "$OUT/so_path.txt" 2>&1
 cp "$(tail -1 "$OUT/so_path.txt")" "$OUT/" 2>/dev/null) &
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
for cfg in "ss2d 1 0" "ss2d 1 1" "scan 1 0" "ss2d 0 0" "scan 0 0"; do
  tag=${cfg// /_}
  timeout 120 "$NCU" --clock-control none --kernel-name regex:_scan_fwd --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats python3 benchmarks/_profile.py $cfg > "$OUT/ncu_$tag.txt" 2>&1
  echo "== $cfg"; grep -E "^\s+(Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|L1/TEX Hit Rate|L2 Hit Rate|Registers Per Thread|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued Instruction|Issue Slots Busy|Grid Size|Mem Busy|Max Bandwidth)" "$OUT/ncu_$tag.txt" | awk '{$1=$1};1' | tr '\n' ';'; echo
done
wait
cat "$OUT/so_path.txt"
timeout 300 python3 benchmarks/gpu_scan.py --json "$OUT/scan.json" 2>&1 | tail -14

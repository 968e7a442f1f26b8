#!/usr/bin/env bash
# Runs tq_bench_quantize (Release, -O3 -march=native), writes its JSON to
# build/release/bench_quantize.json and prints each benchmark's median as a ratio to
# BM_copy at the same size (throughput: higher is better, 1.0 = memcpy speed).
# Usage: bench/run.sh [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-15}
bin=build/release/bench/tq_bench_quantize
if [ ! -x "$bin" ]; then
    bash scripts/setup-debian.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
    cmake --build build/release -j2 --target tq_bench_quantize
fi
json=build/release/bench_quantize.json
"$bin" --benchmark_format=json --benchmark_out="$json" --benchmark_out_format=json \
       --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
       --benchmark_report_aggregates_only=true >/dev/null
python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name, size = b["run_name"].split("/")
    med[(name, int(size))] = b["real_time"]
sizes = sorted({s for _, s in med})
names = [n for n in dict.fromkeys(n for n, _ in med) if n != "BM_copy"]
print(f"{'benchmark (median of runs)':28}" + "".join(f"{'n=' + str(s):>22}" for s in sizes))
print(f"{'BM_copy time':28}" + "".join(f"{med[('BM_copy', s)]:>19.0f} ns" for s in sizes))
for n in names:
    cells = "".join(f"{med[('BM_copy', s)] / med[(n, s)]:>18.2f} x  " for s in sizes)
    print(f"{n:28}{cells}")
PY

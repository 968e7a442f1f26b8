#!/usr/bin/env bash
# Runs the benchmarks (Release, -O3 -march=native) with interleaved repetitions, writes
# their JSON to build/release/bench_*.json and prints medians as ratios to the baseline
# in the same binary:
# - tq_bench_quantize: throughput relative to BM_copy at the same size (1.0 = memcpy);
# - tq_bench_layers: LeNet-5 time relative to BM_lenet5_float (lower is better), the
#   datapaths included (goals: fixed <= 2x, e4m3 <= 4x);
# - tq_bench_train: seconds per LeNet-5 training epoch, QAT relative to float;
# - tq_bench_dispatch (built for generic x86-64): the baseline and the runtime-dispatched
#   fixed-point kernels relative to BM_copy, and the dispatched against the native build;
# - tq_bench_study: the study's evaluation throughput on 2 threads over 1 thread, and the
#   layer-wise search with reuse over every point measured in full (five repetitions);
# - tq_bench_number: a 4096-element dot product on the number types relative to float;
# - tq_bench_onnx (when built with the ONNX importer): load time of a model file, and the
#   imported LeNet-5 relative to the built-in one.
# Usage: bench/run.sh [repetitions]   (training epochs run (repetitions + 4) / 5 times)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-15}
dir=build/release/bench
if [ ! -x "$dir/tq_bench_quantize" ] || [ ! -x "$dir/tq_bench_layers" ] || [ ! -x "$dir/tq_bench_train" ] ||
   [ ! -x "$dir/tq_bench_dispatch" ] || [ ! -x "$dir/tq_bench_study" ] || [ ! -x "$dir/tq_bench_number" ]; then
    bash scripts/setup-debian.sh
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
    cmake --build build/release -j2 --target tq_bench_quantize tq_bench_layers tq_bench_train tq_bench_dispatch \
          tq_bench_study tq_bench_number tq_bench_onnx
fi
run() { # binary, json, repetitions
    "$dir/$1" --benchmark_format=json --benchmark_out="$2" --benchmark_out_format=json \
              --benchmark_repetitions="$3" --benchmark_enable_random_interleaving=true \
              --benchmark_report_aggregates_only=true >/dev/null
}
run tq_bench_quantize build/release/bench_quantize.json "$reps"
run tq_bench_layers build/release/bench_layers.json "$(( (reps + 1) / 2 ))"
run tq_bench_train build/release/bench_train.json "$(( (reps + 4) / 5 ))"
run tq_bench_dispatch build/release/bench_dispatch.json "$reps"
run tq_bench_study build/release/bench_study.json "$reps"
run tq_bench_number build/release/bench_number.json "$reps"
onnx_json=""
if [ -x "$dir/tq_bench_onnx" ]; then
    run tq_bench_onnx build/release/bench_onnx.json "$(( (reps + 1) / 2 ))"
    onnx_json=build/release/bench_onnx.json
fi
python3 - build/release/bench_quantize.json build/release/bench_layers.json build/release/bench_train.json \
          build/release/bench_dispatch.json build/release/bench_study.json build/release/bench_number.json $onnx_json <<'PY'
import json, sys

def medians(path):
    out, single = {}, {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b["real_time"]
        elif b.get("run_type") == "iteration":
            single[b["run_name"]] = b["real_time"]  # one repetition: no aggregates
    return out or single

med = medians(sys.argv[1])
split = {tuple(k.split("/")): v for k, v in med.items()}
sizes = sorted({int(s) for _, s in split})
names = [n for n in dict.fromkeys(n for n, _ in split) if n != "BM_copy"]
print(f"{'quantizer throughput / copy':28}" + "".join(f"{'n=' + str(s):>22}" for s in sizes))
print(f"{'BM_copy time':28}" + "".join(f"{split[('BM_copy', str(s))]:>19.0f} ns" for s in sizes))
for n in names:
    print(f"{n:28}" + "".join(f"{split[('BM_copy', str(s))] / split[(n, str(s))]:>18.2f} x  " for s in sizes))

lay = medians(sys.argv[2])
base = lay["BM_lenet5_float/real_time"]
print()
print(f"{'LeNet-5, batch of 1000':28}{'ms / batch':>12}{'ms / image':>12}{'time / float':>14}")
for n, t in sorted(lay.items(), key=lambda kv: kv[1]):
    print(f"{n.split('/')[0]:28}{t:>12.1f}{t / 1000:>12.4f}{t / base:>13.2f}x")

tr = {k.split("/")[0]: v for k, v in medians(sys.argv[3]).items()}
base = tr["BM_lenet5_train_epoch"]
print()
print(f"{'LeNet-5 training, 60000 images':32}{'s / epoch':>10}{'time / float':>14}")
for n, t in sorted(tr.items(), key=lambda kv: kv[1]):
    print(f"{n:32}{t:>10.2f}{t / base:>13.2f}x")

dis = {tuple(k.split("/")): v for k, v in medians(sys.argv[4]).items()}
print()
print(f"{'generic x86-64 build / copy':28}" + "".join(f"{'n=' + str(s):>22}" for s in sizes))
for n in ("BM_fixed_nearest_baseline", "BM_fixed_nearest_dispatched"):
    print(f"{n:28}" + "".join(f"{dis[('BM_copy', str(s))] / dis[(n, str(s))]:>18.2f} x  " for s in sizes))
ratio = lambda table, n, s: table[("BM_copy", str(s))] / table[(n, str(s))]
print(f"{'dispatched / native':28}" + "".join(
    f"{ratio(dis, 'BM_fixed_nearest_dispatched', s) / ratio(split, 'BM_fixed_nearest', s):>18.2f} x  " for s in sizes))

st = medians(sys.argv[5])
print()
print(f"{'study: LeNet-5, 1000 images':28}{'1 thread ms':>13}{'2 threads ms':>14}{'speed-up':>10}")
for maps, name in ((0, "float"), (1, "extrinsic 8,4"), (2, "intrinsic 12,6")):
    one = st[f"BM_lenet5_evaluate/maps:{maps}/threads:1/real_time"]
    two = st[f"BM_lenet5_evaluate/maps:{maps}/threads:2/real_time"]
    print(f"{name:28}{one:>13.1f}{two:>14.1f}{one / two:>9.2f}x")
search = {k.split("/")[1]: v for k, v in st.items() if k.startswith("BM_resnet_layer_search/")}
reuse, again = search["reuse:1"], search["reuse:0"]
print(f"{'study: ResNet layer search':28}{'reused ms':>13}{'in full ms':>14}{'speed-up':>10}")
print(f"{'':28}{reuse:>13.0f}{again:>14.0f}{again / reuse:>9.2f}x")

num = {k.split("/")[0]: v for k, v in medians(sys.argv[6]).items()}
base = num["BM_dot_float"]
print()
print(f"{'number type: dot of 4096':28}{'us':>10}{'time / float':>14}")
for n, t in sorted(num.items(), key=lambda kv: kv[1]):
    print(f"{n:28}{t / 1000:>10.1f}{t / base:>13.1f}x")

if len(sys.argv) > 7:
    ox = {k.split("/")[0]: v for k, v in medians(sys.argv[7]).items()}
    print()
    print(f"{'ONNX: load a model file':28}{'ms':>10}")
    for n in ("BM_load_lenet5", "BM_load_wide_lenet"):
        print(f"{n:28}{ox[n]:>10.2f}")
    print(f"{'LeNet-5, batch of 1000':28}{'built-in ms':>12}{'imported ms':>13}{'imported / built-in':>21}")
    for kind in ("float", "extrinsic"):
        b, i = ox[f"BM_lenet5_builtin_{kind}"], ox[f"BM_lenet5_imported_{kind}"]
        print(f"{kind:28}{b:>12.1f}{i:>13.1f}{i / b:>20.2f}x")
PY

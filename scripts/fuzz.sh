#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ (AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs each for SECONDS (default 60), two at a time, from a seed corpus the targets
# write themselves plus the regression corpus. A crash, a sanitizer report, a broken
# promise or an undocumented exception fails the run; the input is saved under
# build/fuzz/artifacts/<target>/ (add it to test/fuzz/regressions/<target>/ once fixed).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 3600 npy idx
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(quantizer scope_map npy idx network_load onnx_model)
build=build/fuzz
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B $build -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-O1 \
      -DTENSORQUANT_BUILD_FUZZERS=ON -DTENSORQUANT_BUILD_TESTS=OFF -DTENSORQUANT_BUILD_BENCHMARKS=OFF \
      -DTENSORQUANT_BUILD_EXAMPLES=OFF -DTENSORQUANT_INSTALL=OFF "${launcher[@]}" >/dev/null
cmake --build $build -j2 --target tq_fuzz
rm -rf $build/seeds && $build/test/fuzz/tq_fuzz_seeds $build/seeds
present=()
for t in "${targets[@]}"; do # onnx_model exists when the ONNX importer is built
    if [ -e $build/test/fuzz/tq_fuzz_$t ]; then present+=("$t"); else echo "$t: not built, skipped"; fi
done
targets=("${present[@]}")
run() {
    local t=$1
    mkdir -p $build/corpus/$t $build/artifacts/$t
    local dict=()
    [ -f $build/seeds/$t.dict ] && dict=(-dict=$build/seeds/$t.dict)
    # the first corpus folder collects new inputs; the others are read only
    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        $build/test/fuzz/tq_fuzz_$t -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix=$build/artifacts/$t/ "${dict[@]}" $build/corpus/$t $build/seeds/$t test/fuzz/regressions/$t \
        >$build/$t.log 2>&1; then
        echo "$t: $(grep -m1 '^stat::number_of_executed_units' $build/$t.log | awk '{print $2}') executions in ${seconds} s," \
             "corpus $(ls $build/corpus/$t | wc -l) files, no failure"
    else
        echo "$t: FAILED (log: $build/$t.log)"
        tail -40 $build/$t.log
        return 1
    fi
}
export -f run
export build seconds
printf '%s\n' "${targets[@]}" | xargs -P2 -I{} bash -c 'run {}'

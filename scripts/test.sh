#!/usr/bin/env bash
# Sets up the machine, builds and runs the whole test suite: Release, then again under
# AddressSanitizer and UndefinedBehaviorSanitizer; runs each fuzz target for a minute;
# then installs the package into a temporary prefix and builds a consumer project against
# it with find_package, once per component.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
jobs=2
launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_BASEDIR="$PWD" # clones in other folders share the cache

echo "== Release build and tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release $launcher >/dev/null
cmake --build build/release -j$jobs
ctest --test-dir build/release --output-on-failure -j$jobs

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
# -O1 without debug info: instrumented template-heavy code compiles many times slower at -O2 -g
cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-O1 -DTENSORQUANT_SANITIZE=address,undefined,float-cast-overflow \
      -DTENSORQUANT_TEST_ALL_ARCHES=OFF -DTENSORQUANT_BUILD_BENCHMARKS=OFF -DTENSORQUANT_BUILD_EXAMPLES=OFF \
      $launcher >/dev/null
cmake --build build/sanitize -j$jobs
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build/sanitize --output-on-failure -j$jobs

echo "== Fuzzers: libFuzzer with clang++, ASan and UBSan, 60 s per target (scripts/fuzz.sh)"
bash scripts/fuzz.sh 60

echo "== Package: install, then find_package from a consumer project per component"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build/release --prefix "$prefix/usr" >/dev/null
for component in core nn train all; do
    cmake -S test/consumer -B "$prefix/consumer-$component" -DCOMPONENT=$component -DCMAKE_PREFIX_PATH="$prefix/usr" \
          $launcher >/dev/null
    cmake --build "$prefix/consumer-$component" -j$jobs >/dev/null
    "$prefix/consumer-$component/consumer"
done

echo "== Benchmarks build (run them with bench/run.sh)"
test -x build/release/bench/tq_bench_quantize

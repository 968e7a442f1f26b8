#!/usr/bin/env bash
# Sets up the machine and runs what CI checks: formatting; the test suite with g++
# (Release) and with clang++ under AddressSanitizer and UndefinedBehaviorSanitizer; each
# fuzz target for a minute; the packaging (Conan recipe, vcpkg port, every CMake route);
# every public header with -Werror on both compilers; the benchmarks build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
jobs=2
launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_BASEDIR="$PWD" # clones in other folders share the cache
stage() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; } # the time since the start


stage "clang-format: the tree is formatted as .clang-format says"
git ls-files -z '*.hpp' '*.cpp' | xargs -0 clang-format --dry-run --Werror

stage "g++: Release build and tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release $launcher >/dev/null
cmake --build build/release -j$jobs
ctest --test-dir build/release --output-on-failure -j$jobs

stage "clang++: the test suite under AddressSanitizer + UndefinedBehaviorSanitizer"
# -O1 without debug info: instrumented template-heavy code compiles many times slower at -O2 -g;
# clang's undefined group includes float-cast-overflow (GCC's does not)
cmake -S . -B build/sanitize-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-O1 \
      -DTENSORQUANT_SANITIZE=address,undefined,float-cast-overflow -DTENSORQUANT_TEST_ALL_ARCHES=OFF \
      -DTENSORQUANT_BUILD_BENCHMARKS=OFF -DTENSORQUANT_BUILD_EXAMPLES=OFF $launcher >/dev/null
cmake --build build/sanitize-clang -j$jobs
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build/sanitize-clang --output-on-failure -j$jobs

stage "Fuzzers: libFuzzer with clang++, ASan and UBSan, 60 s per target (scripts/fuzz.sh)"
bash scripts/fuzz.sh 60

stage "Packaging: the Conan recipe and the vcpkg port agree with CMakeLists.txt"
python3 scripts/check_packaging.py

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
consumer() { # consumer <build dir> <cmake options...>: configure, build and run test/consumer
    local dir=$1
    shift
    cmake -S test/consumer -B "$dir" $launcher "$@" >/dev/null
    cmake --build "$dir" -j$jobs --target consumer >/dev/null
    "$dir/consumer"
}

stage "Package: installed as the vcpkg port installs it, then find_package per component"
# shellcheck disable=SC2046 # the options are words
cmake -S . -B "$prefix/port" $(python3 scripts/check_packaging.py --port-options) $launcher >/dev/null
cmake --install "$prefix/port" --prefix "$prefix/usr" >/dev/null
for component in core nn train onnx all; do
    consumer "$prefix/consumer-$component" -DCOMPONENT=$component -DCMAKE_PREFIX_PATH="$prefix/usr"
done

stage "Package without the nn and train features: core works, nn is not found"
# shellcheck disable=SC2046
cmake -S . -B "$prefix/port-core" $(python3 scripts/check_packaging.py --port-options) -DTENSORQUANT_WITH_NN=OFF \
      -DTENSORQUANT_WITH_TRAIN=OFF $launcher >/dev/null
cmake --install "$prefix/port-core" --prefix "$prefix/core" >/dev/null
consumer "$prefix/consumer-core-only" -DCOMPONENT=core -DCMAKE_PREFIX_PATH="$prefix/core"
if cmake -S test/consumer -B "$prefix/consumer-nn-missing" -DCOMPONENT=nn -DCMAKE_PREFIX_PATH="$prefix/core" \
      >"$prefix/nn-missing.log" 2>&1; then
    echo "a package without nn provided tensorquant::nn"
    exit 1
fi
grep -q "built without the component 'nn'" "$prefix/nn-missing.log"

stage "Conan's route: the recipe's CMake variables, installed, and conan/test_package against it"
# shellcheck disable=SC2046
cmake -S . -B "$prefix/conan-build" $(python3 scripts/check_packaging.py --conan-options) $launcher >/dev/null
cmake --install "$prefix/conan-build" --prefix "$prefix/conan-package" >/dev/null
cmake -S conan/test_package -B "$prefix/test_package" -DCMAKE_PREFIX_PATH="$prefix/conan-package" $launcher >/dev/null
cmake --build "$prefix/test_package" -j$jobs >/dev/null
"$prefix/test_package/test_package"

stage "add_subdirectory, FetchContent from this clone, and the build tree's export"
consumer "$prefix/consumer-subdirectory" -DROUTE=add_subdirectory -DTQ_SOURCE_DIR="$PWD"
consumer "$prefix/consumer-fetchcontent" -DCOMPONENT=core -DROUTE=fetchcontent -DTQ_SOURCE_DIR="$PWD" -DTQ_GIT_TAG="$(git rev-parse HEAD)"
consumer "$prefix/consumer-build-tree" -DCOMPONENT=nn -DROUTE=build_tree -Dtensorquant_DIR="$PWD/build/release"

stage "Every public header with -Wall -Wextra -Wpedantic -Werror: g++ and clang++, with and without -march=native"
for cxx in g++ clang++; do
    cmake -S test/consumer -B "$prefix/headers-$cxx" -DROUTE=build_tree -Dtensorquant_DIR="$PWD/build/release" \
          -DHEADER_CHECK=ON -DCMAKE_CXX_COMPILER=$cxx $launcher >/dev/null
    cmake --build "$prefix/headers-$cxx" -j$jobs --target all_headers_generic all_headers_native
    "$prefix/headers-$cxx/all_headers_generic"
    "$prefix/headers-$cxx/all_headers_native"
done

stage "A C++17 build is refused with a clear message"
for cxx in g++ clang++; do
    first=$(echo '#include <tensorquant/tensorquant.hpp>' | $cxx -std=c++17 -fsyntax-only -Iinclude -x c++ - 2>&1 |
            grep -m1 "error" || true)
    echo "$cxx: $first"
    [[ $first == *"tensorquant needs C++20"* ]]
done

stage "Benchmarks build (run them with bench/run.sh)"
test -x build/release/bench/tq_bench_quantize && test -x build/release/bench/tq_bench_study &&
    test -x build/release/bench/tq_bench_number && test -x build/release/bench/tq_bench_onnx
stage "done"

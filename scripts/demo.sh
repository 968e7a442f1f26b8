#!/usr/bin/env bash
# Sets up the machine, builds the demo (Release) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build/release -j2 --target quantizers_demo
./build/release/examples/quantizers_demo

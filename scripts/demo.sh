#!/usr/bin/env bash
# Sets up the machine, builds the demos (Release) and runs them: every quantizer on a few
# values, then LeNet-5 with JSON quantization maps, instrumentation and an intrinsic sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build/release -j2 --target quantizers_demo lenet_quantization
./build/release/examples/quantizers_demo
echo
./build/release/examples/lenet_quantization examples/lenet_maps

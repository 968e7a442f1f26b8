#!/usr/bin/env bash
# Sets up the machine, builds the demos (Release) and runs them:
# 1. every quantizer on a few values, and a user-defined quantizer composed at compile time;
# 2. LeNet-5 trained on Fashion-MNIST for a few epochs (weights saved as .npy), or the
#    checkpoint of an earlier run;
# 3. that network with TensorQuant's JSON quantization maps, the per-layer report,
#    instrumentation, and the intrinsic and extrinsic word-size sweeps on the test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build/release -j2 --target quantizers_demo lenet_quantization train_lenet
./build/release/examples/quantizers_demo
echo
checkpoint=build/lenet5_checkpoint
if [ ! -f "$checkpoint/LeNet/fc5/weights.npy" ]; then
    ./build/release/examples/train_lenet --epochs "${EPOCHS:-3}" --checkpoint "$checkpoint"
    echo
fi
./build/release/examples/lenet_quantization examples/lenet_maps "$checkpoint"

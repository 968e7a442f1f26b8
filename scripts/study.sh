#!/usr/bin/env bash
# The study, as README's first command: sets up the machine, builds tensorquant-study
# (Release), trains float LeNet-5 and the small residual network on Fashion-MNIST (or
# reuses the checkpoints of an earlier run in $OUT/models), runs every experiment and
# writes $OUT/report.md, $OUT/report.txt and the plots in $OUT/plots.
# Searches use the first 1000 test images (the sweeps) and the first 500 (the layer-wise
# and mixed-precision searches); training uses all 60000.
# Environment: OUT (default study), THREADS (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
out=${OUT:-study}
threads=${THREADS:-0}
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build/release -j2 --target tensorquant_study
study=build/release/tools/tensorquant-study
common=(--out "$out" --threads "$threads" --images 1000 --layer-images 500 --no-plots)
# LeNet-5: every experiment, including the gradient study of table 7
"$study" all --network lenet5 --epochs 4 --gradient-epochs 2 "${common[@]}" >/dev/null
# the residual network: everything but the gradient study (six trainings of it would
# double the time); sparsity trains it for one epoch
"$study" all --network small_resnet --epochs 2 --gradient-epochs 1 \
    --experiments sweep,fractions,layers,sparsity,tqt,mixed,formats "${common[@]}" >/dev/null
"$study" report --out "$out"

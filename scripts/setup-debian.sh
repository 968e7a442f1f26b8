#!/usr/bin/env bash
# Installs what tensorquant needs to build, test and benchmark, from Debian 12's packages.
set -euo pipefail
packages=(g++ cmake make ccache git python3 dataset-fashion-mnist xtensor-dev libxsimd-dev xtl-dev libboost-dev nlohmann-json3-dev zlib1g-dev doctest-dev
          libbenchmark-dev libcli11-dev gnuplot-nox clang libclang-rt-14-dev clang-format libeigen3-dev
          libonnx-dev libonnx-testdata libprotobuf-dev python3-onnx python3-numpy python3-torch python3-torchvision)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

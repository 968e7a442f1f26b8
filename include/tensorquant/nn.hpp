// tensorquant networks: the number type, reference layers, scoped quantization maps and
// .npy parameter files.
#pragma once

#include "io/npy.hpp"
#include "nn/layers.hpp"
#include "nn/network.hpp"
#include "nn/scope.hpp"
#include "number/quantized.hpp"

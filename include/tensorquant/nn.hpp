// tensorquant networks: reference layers, scoped quantization maps (JSON), networks and
// their .npy parameter files. Includes the core (tensorquant.hpp).
#pragma once

#include "io/npy.hpp"
#include "nn/layers.hpp"
#include "nn/network.hpp"
#include "nn/scope.hpp"
#include "tensorquant.hpp"

// tensorquant networks: reference layers (one file each under nn/layers/), scoped
// quantization maps (JSON), networks, their .npy parameter files and the model zoo.
// Includes the core (tensorquant.hpp).
#pragma once

#include "io/npy.hpp"
#include "nn/checkpoint.hpp"
#include "nn/datapath.hpp"
#include "nn/graph.hpp"
#include "nn/init.hpp"
#include "nn/instrumentation.hpp"
#include "nn/layers/list.hpp"
#include "nn/network.hpp"
#include "nn/quantization.hpp"
#include "nn/scope.hpp"
#include "nn/zoo.hpp"
#include "tensorquant.hpp"

// The core with xtensor's containers and views included (xtensor 0.24's flat paths or the
// later folders, whichever is installed). quantize() takes xtensor expressions whenever
// xtensor is included; this header saves finding the right include paths.
#pragma once

#include "detail/xtensor_compat.hpp"
#include "interop/xtensor.hpp"
#include "tensorquant.hpp"

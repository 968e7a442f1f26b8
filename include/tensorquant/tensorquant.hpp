// tensorquant: emulation of low-precision arithmetic for deep neural networks.
#pragma once

#include "config.hpp"
#include "core/concepts.hpp"
#include "core/error.hpp"
#include "core/overflow.hpp"
#include "core/random.hpp"
#include "core/rounding.hpp"
#include "quantizers/affine.hpp"
#include "quantizers/compose.hpp"
#include "quantizers/fixed_point.hpp"
#include "quantizers/logarithmic.hpp"
#include "quantizers/minifloat.hpp"
#include "quantizers/simple.hpp"
#include "apply.hpp"
#include "parse.hpp"
#include "number/quantized.hpp"
#include "nn.hpp"

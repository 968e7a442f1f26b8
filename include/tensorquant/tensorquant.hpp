// tensorquant: emulation of low-precision arithmetic for deep neural networks. The core:
// formats and quantizers, the bulk apply, TensorQuant's strings and the number type.
// Networks are in nn.hpp, training in train.hpp.
#pragma once

#include "apply.hpp"
#include "config.hpp"
#include "core/concepts.hpp"
#include "core/error.hpp"
#include "core/overflow.hpp"
#include "core/random.hpp"
#include "core/range_watch.hpp"
#include "core/rounding.hpp"
#include "core/stream.hpp"
#include "number/datapath.hpp"
#include "number/quantized.hpp"
#include "number/stochastic_scope.hpp"
#include "parse.hpp"
#include "quantizers/affine.hpp"
#include "quantizers/block.hpp"
#include "quantizers/compose.hpp"
#include "quantizers/fixed_point.hpp"
#include "quantizers/logarithmic.hpp"
#include "quantizers/minifloat.hpp"
#include "quantizers/nvfp4.hpp"
#include "quantizers/simple.hpp"

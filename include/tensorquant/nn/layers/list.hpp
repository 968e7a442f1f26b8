// Every layer type, in one list: the network's layer variant, and with it every visit
// (forward, intrinsic checks, training, parameters, checkpoints), derives from it.
#pragma once

#include "../../config.hpp"

#include "activation.hpp"
#include "add.hpp"
#include "batch_norm.hpp"
#include "clip.hpp"
#include "concat.hpp"
#include "conv2d.hpp"
#include "dense.hpp"
#include "flatten.hpp"
#include "pooling.hpp"
#include "softmax.hpp"

#include <variant>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

using layer =
    std::variant<conv2d_layer, dense_layer, max_pool_layer, avg_pool_layer, global_avg_pool_layer, batch_norm_layer,
                 activation_layer, clip_layer, add_layer, concat_layer, flatten_layer, softmax_layer>;

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

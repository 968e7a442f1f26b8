// Every layer type, in one list: the network's layer variant, and with it every visit
// (forward, intrinsic checks, training, parameters, checkpoints), derives from it.
#pragma once

#include "../../config.hpp"

#include "activation.hpp"
#include "batch_norm.hpp"
#include "binary.hpp"
#include "clip.hpp"
#include "concat.hpp"
#include "constant.hpp"
#include "conv2d.hpp"
#include "conv_transpose.hpp"
#include "dense.hpp"
#include "embedding.hpp"
#include "expand.hpp"
#include "flatten.hpp"
#include "gather.hpp"
#include "layer_norm.hpp"
#include "matmul.hpp"
#include "pad.hpp"
#include "pooling.hpp"
#include "reduce.hpp"
#include "reshape.hpp"
#include "resize.hpp"
#include "slice.hpp"
#include "softmax.hpp"
#include "transpose.hpp"

#include <variant>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

using layer =
    std::variant<conv2d_layer, dense_layer, max_pool_layer, avg_pool_layer, global_avg_pool_layer, batch_norm_layer,
                 activation_layer, clip_layer, binary_layer, concat_layer, flatten_layer, softmax_layer, matmul_layer,
                 reduce_layer, layer_norm_layer, transpose_layer, reshape_layer, slice_layer, gather_layer,
                 embedding_layer, expand_layer, constant_layer, pad_layer, conv_transpose2d_layer, resize_layer>;

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

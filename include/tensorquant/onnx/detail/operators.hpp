// The list of operators the importer reads: each is a converter (one per operator, in the
// files of its family) and one entry here; the importer, its error for an unknown operator,
// the conformance test and the documentation's list all derive from `operators`. A converter
// reads the node through the importer, adds layers (or records a constant or an alias) and
// says what it cannot do with an unsupported_error naming the node.
#pragma once

#include "../../config.hpp"

#include "importer.hpp"
#include "ops_activation.hpp"
#include "ops_conv.hpp"
#include "ops_elementwise.hpp"
#include "ops_norm.hpp"
#include "ops_pool.hpp"
#include "ops_qdq.hpp"
#include "ops_shape.hpp"

#include <array>
#include <string>
#include <string_view>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

struct operator_entry
{
    std::string_view name;
    void (*convert)(importer&);
};

inline constexpr std::array operators{
    // convolutions and products
    operator_entry{"Conv", convert_conv},
    operator_entry{"ConvTranspose", convert_conv_transpose},
    operator_entry{"Gemm", convert_gemm},
    operator_entry{"MatMul", convert_matmul},
    // element-wise arithmetic
    operator_entry{"Add", convert_add},
    operator_entry{"Sub", convert_sub},
    operator_entry{"Mul", convert_mul},
    operator_entry{"Div", convert_div},
    operator_entry{"Max", convert_max},
    operator_entry{"Min", convert_min},
    operator_entry{"Pow", convert_pow},
    // element-wise functions
    operator_entry{"Relu", convert_activation<nn::activation::relu>},
    operator_entry{"LeakyRelu", convert_leaky_relu},
    operator_entry{"Sigmoid", convert_activation<nn::activation::sigmoid>},
    operator_entry{"HardSigmoid", convert_hard_sigmoid},
    operator_entry{"HardSwish", convert_activation<nn::activation::hard_swish>},
    operator_entry{"Tanh", convert_activation<nn::activation::tanh>},
    operator_entry{"Erf", convert_activation<nn::activation::erf>},
    operator_entry{"Gelu", convert_gelu},
    operator_entry{"Sqrt", convert_activation<nn::activation::sqrt>},
    operator_entry{"Reciprocal", convert_activation<nn::activation::reciprocal>},
    operator_entry{"Neg", convert_activation<nn::activation::neg>},
    operator_entry{"Abs", convert_activation<nn::activation::abs>},
    operator_entry{"Clip", convert_clip},
    operator_entry{"Softmax", convert_softmax<false>},
    operator_entry{"LogSoftmax", convert_softmax<true>},
    // pooling and resizing
    operator_entry{"MaxPool", convert_max_pool},
    operator_entry{"AveragePool", convert_average_pool},
    operator_entry{"GlobalAveragePool", convert_global_average_pool},
    operator_entry{"GlobalMaxPool", convert_global_max_pool},
    operator_entry{"Resize", convert_resize},
    operator_entry{"Upsample", convert_resize},
    // normalization and reductions
    operator_entry{"BatchNormalization", convert_batch_norm},
    operator_entry{"LayerNormalization", convert_layer_norm},
    operator_entry{"ReduceMean", convert_reduce_mean},
    operator_entry{"ReduceSum", convert_reduce_sum},
    operator_entry{"ReduceMax", convert_reduce_max},
    operator_entry{"ReduceMin", convert_reduce_min},
    operator_entry{"ReduceProd", convert_reduce_sum}, // constants only (the converter checks)
    // shapes and data movement
    operator_entry{"Identity", convert_identity},
    operator_entry{"Dropout", convert_dropout},
    operator_entry{"Constant", convert_constant},
    operator_entry{"Shape", convert_shape},
    operator_entry{"Size", convert_size},
    operator_entry{"Cast", convert_cast},
    operator_entry{"Reshape", convert_reshape},
    operator_entry{"Flatten", convert_flatten},
    operator_entry{"Squeeze", convert_squeeze},
    operator_entry{"Unsqueeze", convert_unsqueeze},
    operator_entry{"Transpose", convert_transpose},
    operator_entry{"Concat", convert_concat},
    operator_entry{"Split", convert_split},
    operator_entry{"Slice", convert_slice},
    operator_entry{"Gather", convert_gather},
    operator_entry{"Expand", convert_expand},
    operator_entry{"Pad", convert_pad},
    operator_entry{"ConstantOfShape", convert_constant_of_shape},
    operator_entry{"Range", convert_range},
    operator_entry{"Tile", convert_tile},
    operator_entry{"ScatterND", convert_scatter_nd},
    // comparisons and logic (folded)
    operator_entry{"Equal", convert_compare},
    operator_entry{"Less", convert_compare},
    operator_entry{"Greater", convert_compare},
    operator_entry{"LessOrEqual", convert_compare},
    operator_entry{"GreaterOrEqual", convert_compare},
    operator_entry{"Not", convert_logic},
    operator_entry{"And", convert_logic},
    operator_entry{"Or", convert_logic},
    operator_entry{"Xor", convert_logic},
    operator_entry{"Where", convert_where},
    operator_entry{"Mod", convert_mod},
    operator_entry{"Floor", convert_rounding},
    operator_entry{"Ceil", convert_rounding},
    operator_entry{"Round", convert_rounding},
    operator_entry{"Sign", convert_rounding},
    // QDQ
    operator_entry{"QuantizeLinear", convert_quantize_linear},
    operator_entry{"DequantizeLinear", convert_dequantize_linear},
};

inline std::string operator_list()
{
    std::string r;
    for (auto const& e : operators) r += (r.empty() ? "" : ", ") + std::string(e.name);
    return r;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

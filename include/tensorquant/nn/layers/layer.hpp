// What a layer is. Every file in this folder defines one layer type, and list.hpp names
// them all; the network, the trainer and the instrumentation reach a layer only through
// this interface, so adding a layer touches its own file and that list.
//
//   static constexpr std::string_view kind;            "conv2d", ...
//   static void parameters_of(self, fn) (if it has any):  fn(parameter_info, tensor&) for
//                                                      each parameter tensor, in a fixed order
//   tensor<float> forward(ctx) const:                  the float path; ctx.input(k) is the
//                                                      k-th input, ctx.param(p, t) parameter
//                                                      p after the weight quantizer
//   tensor<float> forward_intrinsic(ctx, q) const:     every step rounded to the runtime
//                                                      fixed-point format q
//   std::string intrinsic_problem(q) const:            why q cannot run intrinsically here
//                                                      ("" when it can)
//   forward_datapath(ctx, d), datapath_problem(d):     (optional; layers that multiply and
//                                                      accumulate) the same for a datapath
//                                                      (nn/datapath.hpp)
//   var on_tape(ctx) const:                            the training op: ctx.tape(), ctx.input(k),
//                                                      ctx.param(p) (quantized), ctx.is_last()
//
// Activations flow as float tensors of any rank (nn::tensor, row-major); image tensors are
// NHWC, and each layer says which layout it reads.
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"

#include <string_view>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// A parameter tensor as the trainer and the checkpoints see it.
struct parameter_info
{
    std::string_view name; // file name in checkpoints, key in reports
    bool trainable = true; // false: running statistics (batch norm's mean and variance)
    bool decays = false;   // L2 weight decay applies
};

// Calls fn(parameter_info, tensor&) for each parameter of layer l (none for most layers).
template <class L, class Fn>
void for_each_parameter(L& l, Fn&& fn)
{
    if constexpr (requires { std::remove_const_t<L>::parameters_of(l, fn); })
        std::remove_const_t<L>::parameters_of(l, fn);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// Permutes the axes of a tensor of any rank (ONNX's Transpose; the importer's layout
// changes between NCHW and NHWC). Data movement only: the intrinsic path rounds the input
// to the format and moves it.
#pragma once

#include "../../config.hpp"

#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace tape_ops {

template <class Tape>
typename Tape::var transpose(Tape& t, typename Tape::var x, std::vector<std::size_t> const& perm)
{
    using V = typename Tape::var;
    return t.record(kernels::permuted(t.value(x), perm),
                    [x, inv = kernels::inverse_permutation(perm)](Tape& tp, V out) {
                        const auto back = kernels::permuted(tp.grad(out), inv);
                        kernels::accumulate(tp.grad(x), back.data());
                    },
                    {x});
}

} // namespace tape_ops

struct transpose_layer
{
    static constexpr std::string_view kind = "transpose";
    std::vector<std::size_t> perm; // axis i of the output is axis perm[i] of the input

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::permuted(ctx.input(0), perm);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::permuted(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), perm);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::transpose(ctx.tape(), ctx.input(0), perm);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// A constant table (a parameter) gathered along one axis at the input's indices: ONNX's
// Gather of an initializer by the network's integer input (embeddings), whose indices
// arrive as floats holding integers. The intrinsic path rounds the table to the format.
#pragma once

#include "../../config.hpp"

#include "gather.hpp"

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// A constant table (a parameter) gathered at the input's indices: embeddings.
struct embedding_layer
{
    static constexpr std::string_view kind = "embedding";
    tensor<float> table;
    std::size_t axis = 0;

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"table", true, false}, self.table);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return look_up(ctx.param(0, table), ctx.input(0));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return look_up(kernels::quantized_copy(q, ctx.param(0, table), kernels::intrinsic_operand_offset(1)),
                       ctx.input(0));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        auto const& ids = t.value(ctx.input(0));
        return tape_ops::gather(t, ctx.param(0), axis, kernels::indices_of(ids.data(), ids.size()),
                                std::vector<std::size_t>(ids.shape().begin(), ids.shape().end()));
    }

private:
    tensor<float> look_up(tensor<float> const& t, tensor<float> const& ids) const
    {
        return kernels::gathered(t, axis, kernels::indices_of(ids.data(), ids.size()),
                                 std::vector<std::size_t>(ids.shape().begin(), ids.shape().end()));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

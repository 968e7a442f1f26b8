// A constant (a parameter) as a computed tensor, broadcast to a shape that may follow the
// batch: what an imported graph concatenates with or expands to the batch (a vision
// transformer's class token). Its input is the network's input, which gives the batch. The
// intrinsic path rounds the constant to the format.
#pragma once

#include "../../config.hpp"

#include "../kernels/broadcast.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "expand.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

struct constant_layer
{
    static constexpr std::string_view kind = "constant";
    tensor<float> value;
    std::vector<extent> shape; // the shape it is broadcast to; empty: its own

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"value", true, false}, self.value);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::expanded(ctx.param(0, value), target(ctx));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::expanded(kernels::quantized_copy(q, ctx.param(0, value), kernels::intrinsic_operand_offset(1)),
                                 target(ctx));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::expand(ctx.tape(), ctx.param(0), target(ctx));
    }

private:
    template <class Ctx>
    std::vector<std::size_t> target(Ctx& ctx) const
    {
        if (shape.empty()) return std::vector<std::size_t>(value.shape().begin(), value.shape().end());
        return kernels::resolve(shape, kernels::batch_of(ctx, ctx.input(0)));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

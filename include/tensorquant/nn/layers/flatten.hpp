// [N, ...] -> [N, F]: each sample's elements in the order the network holds them.
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// [N, H, W, C] -> [N, H W C], in NHWC order.
template <class V>
tensor2<V> flatten(tensor4<V> const& x)
{
    tensor2<V> y = tensor2<V>::from_shape({x.shape(0), x.size() / std::max<std::size_t>(x.shape(0), 1)});
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}

namespace kernels {

// x as [N, F] (a copy).
template <class V>
tensor<V> flattened(tensor<V> const& x)
{
    const std::size_t n = x.dimension() ? x.shape(0) : 1;
    tensor<V> y = tensor<V>::from_shape({n, x.size() / std::max<std::size_t>(n, 1)});
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}

} // namespace kernels

namespace tape_ops {

// [N, ...] -> [N, F]
template <class Tape>
typename Tape::var flatten(Tape& t, typename Tape::var x)
{
    using V = typename Tape::var;
    return t.record(kernels::flattened(t.value(x)),
                    [x](Tape& tp, V out) { kernels::accumulate(tp.grad(x), tp.grad(out).data()); }, {x});
}

} // namespace tape_ops

struct flatten_layer
{
    static constexpr std::string_view kind = "flatten";

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::flattened(ctx.input(0));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::flattened(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::flatten(ctx.tape(), ctx.input(0));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

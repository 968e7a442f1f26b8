// Element-wise sum of two tensors of one shape (residual connections), with an optional
// fused activation. Intrinsic: the sum of two words of W <= 24 bits is exact in float, so
// it is rounded once.
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

template <class V>
tensor4<V> add(tensor4<V> const& a, tensor4<V> const& b)
{
    if (a.shape() != b.shape())
        throw shape_error("add: shapes " + kernels::shape_string(a.shape()) + " and " +
                          kernels::shape_string(b.shape()) + " differ");
    tensor4<V> y = tensor4<V>::from_shape(a.shape());
    for (std::size_t i = 0; i < a.size(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
    return y;
}

namespace tape_ops {

template <class Tape>
typename Tape::var add(Tape& t, typename Tape::var a, typename Tape::var b)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    if (t.value(a).shape() != t.value(b).shape()) throw shape_error("add: shapes differ");
    xt::xarray<T> y = t.value(a) + t.value(b);
    return t.record(std::move(y),
                    [a, b](Tape& tp, V out) {
                        for (V v : {a, b})
                            if (tp.needs_grad(v)) kernels::accumulate(tp.grad(v), tp.grad(out).data());
                    },
                    {a, b});
}

} // namespace tape_ops

struct add_layer
{
    static constexpr std::string_view kind = "add";
    activation act = activation::none;
    double alpha = 0.2;

    template <class Ctx>
    tensor4<float> forward(Ctx& ctx) const
    {
        return kernels::activate_float(nn::add(ctx.input(0), ctx.input(1)), act, alpha);
    }
    template <class Ctx>
    tensor4<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        auto y = nn::add(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)),
                         kernels::quantized_copy(q, ctx.input(1), kernels::intrinsic_operand_offset(1)));
        quantize_inplace(q, std::span<float>(y.data(), y.size()));
        return kernels::activate_intrinsic(std::move(y), act, alpha, q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::activate(ctx.tape(), tape_ops::add(ctx.tape(), ctx.input(0), ctx.input(1)), act, alpha);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

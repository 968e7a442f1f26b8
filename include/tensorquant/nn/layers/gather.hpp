// A computed tensor gathered along one axis at constant indices: ONNX's Gather of a token
// of a sequence, of channels. Data movement only: the intrinsic path rounds the input to
// the format and moves it. The gather kernels serve embedding_layer too.
#pragma once

#include "../../config.hpp"

#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// fn(out, in) for each element of the gather of data (shape) along axis at the indices
// (negative ones count from the end); returns the result's shape.
template <class S, class Fn>
std::vector<std::size_t> for_each_gathered(S const& shape, std::size_t axis, std::vector<std::int64_t> const& indices,
                                           std::vector<std::size_t> const& indices_shape, Fn&& fn)
{
    if (axis >= shape.size())
        throw shape_error("gather: axis " + std::to_string(axis) + " is outside a tensor of shape " +
                          shape_string(shape));
    const auto dim = std::int64_t(shape[axis]);
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= std::size_t(shape[d]);
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= std::size_t(shape[d]);
    std::vector<std::size_t> at(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
        const std::int64_t i = indices[k] < 0 ? indices[k] + dim : indices[k];
        if (i < 0 || i >= dim)
            throw shape_error("gather: index " + std::to_string(indices[k]) + " is outside an axis of " +
                              std::to_string(dim));
        at[k] = std::size_t(i);
    }
    for (std::size_t o = 0; o < outer; ++o)
        for (std::size_t k = 0; k < at.size(); ++k)
            for (std::size_t j = 0; j < inner; ++j)
                fn((o * at.size() + k) * inner + j, (o * std::size_t(dim) + at[k]) * inner + j);
    std::vector<std::size_t> out(shape.begin(), shape.begin() + std::ptrdiff_t(axis));
    out.insert(out.end(), indices_shape.begin(), indices_shape.end());
    out.insert(out.end(), shape.begin() + std::ptrdiff_t(axis) + 1, shape.end());
    return out;
}

template <class V>
tensor<V> gathered(tensor<V> const& x, std::size_t axis, std::vector<std::int64_t> const& indices,
                   std::vector<std::size_t> const& indices_shape)
{
    std::vector<std::pair<std::size_t, std::size_t>> moves;
    const auto shape = for_each_gathered(x.shape(), axis, indices, indices_shape, [&](std::size_t o, std::size_t i) {
        moves.push_back({o, i});
    });
    tensor<V> y = tensor<V>::from_shape(shape);
    for (auto [o, i] : moves) y.data()[o] = x.data()[i];
    return y;
}

// Indices held as floats (the network's integer input): each must be an integer.
template <class T>
std::vector<std::int64_t> indices_of(T const* v, std::size_t n)
{
    std::vector<std::int64_t> r(n);
    for (std::size_t k = 0; k < n; ++k) {
        if (!(std::floor(v[k]) == v[k]) || std::fabs(v[k]) > 9.0e15)
            throw shape_error("gather: index " + std::to_string(v[k]) + " is not an integer");
        r[k] = std::int64_t(v[k]);
    }
    return r;
}

} // namespace kernels

namespace tape_ops {

// Gather of x (a variable: data, or a parameter table) at fixed indices.
template <class Tape>
typename Tape::var gather(Tape& t, typename Tape::var x, std::size_t axis, std::vector<std::int64_t> const& indices,
                          std::vector<std::size_t> const& indices_shape)
{
    using V = typename Tape::var;
    return t.record(kernels::gathered(t.value(x), axis, indices, indices_shape),
                    [x, axis, indices, indices_shape](Tape& tp, V out) {
                        auto* dx = tp.grad(x).data();
                        auto const* dy = tp.grad(out).data();
                        kernels::for_each_gathered(tp.value(x).shape(), axis, indices, indices_shape,
                                                   [&](std::size_t o, std::size_t i) { dx[i] += dy[o]; });
                    },
                    {x});
}

} // namespace tape_ops

// A computed tensor gathered at constant indices.
struct gather_layer
{
    static constexpr std::string_view kind = "gather";
    std::size_t axis = 0; // of the tensor as the network holds it
    std::vector<std::int64_t> indices;
    std::vector<std::size_t> indices_shape; // [] for one index (the axis goes away)

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::gathered(ctx.input(0), axis, indices, indices_shape);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::gathered(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), axis,
                                 indices, indices_shape);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::gather(ctx.tape(), ctx.input(0), axis, indices, indices_shape);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// Concatenation of tensors of one rank along one axis (NHWC's channels: axis 3 or -1).
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

// Along channels (NHWC axis 3).
template <class V>
tensor4<V> concat(std::vector<tensor4<V> const*> const& parts)
{
    if (parts.empty()) throw shape_error("concat: no inputs");
    auto s = parts[0]->shape();
    std::size_t c = 0;
    for (auto const* p : parts) {
        if (p->shape(0) != s[0] || p->shape(1) != s[1] || p->shape(2) != s[2])
            throw shape_error("concat: shapes " + kernels::shape_string(s) + " and " +
                              kernels::shape_string(p->shape()) + " differ outside the channel axis");
        c += p->shape(3);
    }
    tensor4<V> y = tensor4<V>::from_shape({s[0], s[1], s[2], c});
    const std::size_t pixels = s[0] * s[1] * s[2];
    std::size_t offset = 0;
    for (auto const* p : parts) {
        const std::size_t pc = p->shape(3);
        for (std::size_t r = 0; r < pixels; ++r)
            std::copy(p->data() + r * pc, p->data() + (r + 1) * pc, y.data() + r * c + offset);
        offset += pc;
    }
    return y;
}

namespace kernels {

// The parts along `axis` (negative: from the end); they agree on every other axis.
template <class V>
tensor<V> concat_along(std::vector<tensor<V> const*> const& parts, int axis)
{
    if (parts.empty()) throw shape_error("concat: no inputs");
    auto shape = std::vector<std::size_t>(parts[0]->shape().begin(), parts[0]->shape().end());
    const int rank = int(shape.size());
    const int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
        throw shape_error("concat: axis " + std::to_string(axis) + " is outside a tensor of shape " +
                          shape_string(shape));
    std::size_t total = 0;
    for (auto const* p : parts) {
        bool fits = int(p->dimension()) == rank;
        for (int d = 0; fits && d < rank; ++d) fits = d == a || p->shape(std::size_t(d)) == shape[std::size_t(d)];
        if (!fits)
            throw shape_error("concat: shapes " + shape_string(shape) + " and " + shape_string(p->shape()) +
                              " differ outside axis " + std::to_string(a));
        total += p->shape(std::size_t(a));
    }
    std::size_t outer = 1, inner = 1;
    for (int d = 0; d < a; ++d) outer *= shape[std::size_t(d)];
    for (int d = a + 1; d < rank; ++d) inner *= shape[std::size_t(d)];
    shape[std::size_t(a)] = total;
    tensor<V> y = tensor<V>::from_shape(shape);
    std::size_t offset = 0;
    for (auto const* p : parts) {
        const std::size_t run = p->shape(std::size_t(a)) * inner;
        for (std::size_t o = 0; o < outer; ++o)
            std::copy(p->data() + o * run, p->data() + (o + 1) * run, y.data() + o * total * inner + offset);
        offset += run;
    }
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var concat(Tape& t, std::vector<typename Tape::var> const& parts, int axis = -1)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    std::vector<xt::xarray<T> const*> ptrs;
    for (V v : parts) ptrs.push_back(&t.value(v));
    auto y = kernels::concat_along(ptrs, axis);
    const int rank = int(y.dimension());
    const std::size_t a = std::size_t(axis < 0 ? axis + rank : axis);
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < a; ++d) outer *= y.shape(d);
    for (std::size_t d = a + 1; d < std::size_t(rank); ++d) inner *= y.shape(d);
    std::vector<std::size_t> widths;
    for (auto const* p : ptrs) widths.push_back(p->shape(a) * inner);
    return t.record(
        std::move(y),
        [parts, widths, outer](Tape& tp, V o) {
            std::size_t total = 0;
            for (auto w : widths) total += w;
            T const* dy = tp.grad(o).data();
            std::size_t offset = 0;
            for (std::size_t k = 0; k < parts.size(); ++k) {
                if (tp.needs_grad(parts[k])) {
                    T* d = tp.grad(parts[k]).data();
                    for (std::size_t r = 0; r < outer; ++r)
                        for (std::size_t c = 0; c < widths[k]; ++c) d[r * widths[k] + c] += dy[r * total + offset + c];
                }
                offset += widths[k];
            }
        },
        parts);
}

} // namespace tape_ops

struct concat_layer
{
    static constexpr std::string_view kind = "concat";
    int axis = -1; // of the tensors as the network holds them; negative: from the end

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        std::vector<tensor<float> const*> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k) parts.push_back(&ctx.input(k));
        return kernels::concat_along(parts, axis);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        std::vector<tensor<float>> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k)
            parts.push_back(kernels::quantized_copy(q, ctx.input(k), kernels::intrinsic_operand_offset(k)));
        std::vector<tensor<float> const*> ptrs;
        for (auto const& p : parts) ptrs.push_back(&p);
        return kernels::concat_along(ptrs, axis);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        std::vector<typename std::decay_t<decltype(ctx.tape())>::var> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k) parts.push_back(ctx.input(k));
        return tape_ops::concat(ctx.tape(), parts, axis);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

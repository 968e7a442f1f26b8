// Concatenation along channels (NHWC axis 3).
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

namespace tape_ops {

// Along the last axis.
template <class Tape>
typename Tape::var concat(Tape& t, std::vector<typename Tape::var> const& parts)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    std::vector<tensor4<T>> p4;
    for (V v : parts) p4.push_back(kernels::as_fixed<T, 4>(t.value(v)));
    std::vector<tensor4<T> const*> ptrs;
    for (auto const& p : p4) ptrs.push_back(&p);
    auto y = nn::concat(ptrs);
    std::vector<std::size_t> widths;
    for (auto const& p : p4) widths.push_back(p.shape(3));
    return t.record(
        kernels::as_dynamic(y),
        [parts, widths](Tape& tp, V o) {
            std::size_t total = 0;
            for (auto w : widths) total += w;
            T const* dy = tp.grad(o).data();
            const std::size_t pixels = tp.value(o).size() / total;
            std::size_t offset = 0;
            for (std::size_t k = 0; k < parts.size(); ++k) {
                if (tp.needs_grad(parts[k])) {
                    T* d = tp.grad(parts[k]).data();
                    for (std::size_t r = 0; r < pixels; ++r)
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

    template <class Ctx>
    tensor4<float> forward(Ctx& ctx) const
    {
        std::vector<tensor4<float> const*> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k) parts.push_back(&ctx.input(k));
        return nn::concat(parts);
    }
    template <class Ctx>
    tensor4<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        std::vector<tensor4<float>> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k)
            parts.push_back(kernels::quantized_copy(q, ctx.input(k), kernels::intrinsic_operand_offset(k)));
        std::vector<tensor4<float> const*> ptrs;
        for (auto const& p : parts) ptrs.push_back(&p);
        return nn::concat(ptrs);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        std::vector<typename std::decay_t<decltype(ctx.tape())>::var> parts;
        for (std::size_t k = 0; k < ctx.inputs(); ++k) parts.push_back(ctx.input(k));
        return tape_ops::concat(ctx.tape(), parts);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

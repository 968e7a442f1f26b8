// Pads (or, with negative pads, crops) each axis of a tensor of any rank: with a constant,
// by reflection (the edge not repeated) or by repeating the edge (ONNX's Pad). Data movement
// only: the intrinsic path rounds the input and the constant to the format and moves them.
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class pad_mode {
    constant,
    reflect,
    edge,
};
inline constexpr std::array<std::string_view, 3> pad_mode_names{"constant", "reflect", "edge"};

namespace kernels {

// For each axis, the input index each output index reads (-1: the constant).
template <class S>
std::vector<std::vector<std::int64_t>> pad_sources(S const& shape, std::vector<std::int64_t> const& begins,
                                                   std::vector<std::int64_t> const& ends, pad_mode mode)
{
    if (begins.size() != shape.size() || ends.size() != shape.size())
        throw shape_error("pad: " + std::to_string(begins.size()) + " pads for a tensor of shape " +
                          shape_string(shape));
    std::vector<std::vector<std::int64_t>> src(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d) {
        const auto n = std::int64_t(shape[d]);
        const std::int64_t out = n + begins[d] + ends[d];
        if (out < 0)
            throw shape_error("pad: pads " + std::to_string(begins[d]) + " and " + std::to_string(ends[d]) +
                              " remove more than the " + std::to_string(n) + " elements of axis " + std::to_string(d));
        if (mode == pad_mode::reflect && (begins[d] >= n || ends[d] >= n) && (begins[d] > 0 || ends[d] > 0))
            throw shape_error("pad: reflecting an axis of " + std::to_string(n) + " needs pads below " +
                              std::to_string(n));
        if (mode == pad_mode::edge && n == 0 && out > 0) throw shape_error("pad: edge padding of an empty axis");
        for (std::int64_t o = 0; o < out; ++o) {
            std::int64_t i = o - begins[d];
            if (i < 0 || i >= n) {
                if (mode == pad_mode::constant)
                    i = -1;
                else if (mode == pad_mode::edge)
                    i = i < 0 ? 0 : n - 1;
                else
                    i = i < 0 ? -i : 2 * (n - 1) - i;
            }
            src[d].push_back(i);
        }
    }
    return src;
}

// fn(out, in) per element of the result (in = -1: the constant); returns its shape.
template <class S, class Fn>
std::vector<std::size_t> for_each_padded(S const& shape, std::vector<std::vector<std::int64_t>> const& src, Fn&& fn)
{
    const std::size_t rank = shape.size();
    std::vector<std::size_t> out_shape, stride(rank);
    std::size_t step = 1;
    for (std::size_t d = rank; d-- > 0;) stride[d] = step, step *= std::size_t(shape[d]);
    for (auto const& s : src) out_shape.push_back(s.size());
    const std::size_t total = element_count(out_shape);
    std::vector<std::size_t> index(rank, 0);
    for (std::size_t o = 0; o < total; ++o) {
        std::int64_t at = 0;
        for (std::size_t d = 0; d < rank && at >= 0; ++d) {
            const auto s = src[d][index[d]];
            at = s < 0 ? -1 : at + s * std::int64_t(stride[d]);
        }
        fn(o, at);
        for (std::size_t d = rank; d-- > 0;) {
            if (++index[d] < out_shape[d]) break;
            index[d] = 0;
        }
    }
    return out_shape;
}

template <class V>
tensor<V> padded(tensor<V> const& x, std::vector<std::int64_t> const& begins, std::vector<std::int64_t> const& ends,
                 pad_mode mode, V value)
{
    const auto src = pad_sources(x.shape(), begins, ends, mode);
    std::vector<std::size_t> shape;
    for (auto const& s : src) shape.push_back(s.size());
    tensor<V> y = tensor<V>::from_shape(shape);
    for_each_padded(x.shape(), src,
                    [&](std::size_t o, std::int64_t i) { y.data()[o] = i < 0 ? value : x.data()[std::size_t(i)]; });
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var pad(Tape& t, typename Tape::var x, std::vector<std::int64_t> const& begins,
                       std::vector<std::int64_t> const& ends, pad_mode mode, double value)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    return t.record(kernels::padded(t.value(x), begins, ends, mode, T(value)),
                    [x, begins, ends, mode](Tape& tp, V out) {
                        const auto src = kernels::pad_sources(tp.value(x).shape(), begins, ends, mode);
                        T* dx = tp.grad(x).data();
                        T const* dy = tp.grad(out).data();
                        kernels::for_each_padded(tp.value(x).shape(), src, [&](std::size_t o, std::int64_t i) {
                            if (i >= 0) dx[i] += dy[o];
                        });
                    },
                    {x});
}

} // namespace tape_ops

struct pad_layer
{
    static constexpr std::string_view kind = "pad";
    pad_mode mode = pad_mode::constant;
    std::vector<std::int64_t> begins, ends; // per axis of the tensor as the network holds it
    float value = 0;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::padded(ctx.input(0), begins, ends, mode, value);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        float v = value;
        apply_options o;
        o.index_offset = kernels::intrinsic_operand_offset(1);
        quantize_inplace(q, std::span<float>(&v, 1), o);
        return kernels::padded(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), begins,
                               ends, mode, v);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::pad(ctx.tape(), ctx.input(0), begins, ends, mode, double(value));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

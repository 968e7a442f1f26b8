// Reductions over any axes of a tensor of any rank (ONNX's ReduceSum, ReduceMean, ReduceMax,
// ReduceMin, and GlobalAveragePool / GlobalMaxPool on tensors other than NHWC images),
// keeping the reduced axes as 1 or dropping them. The elements of each output are visited
// in row-major order of the reduced axes. Float path: sums in double, the mean divided in
// double, rounded once. Intrinsic path: every partial sum rounded to the format (exact
// sums of values of the format, with the overflow policy at each step), the mean then
// divided once by the count (the number type's division); the maximum and minimum are exact.
#pragma once

#include "../../config.hpp"

#include "../../number/quantized.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class reduce_op {
    sum,
    mean,
    max,
    min,
};
inline constexpr std::array<std::string_view, 4> reduce_op_names{"sum", "mean", "max", "min"};

namespace kernels {

// Where the elements of each output and of each reduced position are: x[kept[k] +
// reduced[r]] is the r-th element (row-major over the reduced axes) of output k.
struct reduction
{
    std::vector<std::size_t> kept, reduced, shape; // shape: of the result
};
template <class S>
reduction reduction_of(S const& shape, std::vector<std::size_t> const& axes, bool keepdims)
{
    const std::size_t rank = shape.size();
    std::vector<bool> on(rank, false);
    for (auto a : axes) {
        if (a >= rank)
            throw shape_error("reduce: axis " + std::to_string(a) + " is outside a tensor of shape " +
                              shape_string(shape));
        on[a] = true;
    }
    std::vector<std::size_t> stride(rank);
    std::size_t step = 1;
    for (std::size_t d = rank; d-- > 0;) stride[d] = step, step *= std::size_t(shape[d]);
    reduction r;
    r.kept = {0};
    r.reduced = {0};
    for (std::size_t d = 0; d < rank; ++d) {
        auto& list = on[d] ? r.reduced : r.kept;
        std::vector<std::size_t> next;
        next.reserve(list.size() * std::size_t(shape[d]));
        for (auto base : list)
            for (std::size_t i = 0; i < std::size_t(shape[d]); ++i) next.push_back(base + i * stride[d]);
        list = std::move(next);
        if (!on[d])
            r.shape.push_back(std::size_t(shape[d]));
        else if (keepdims)
            r.shape.push_back(1);
    }
    return r;
}

// The float (or double) path; the mean of no elements is NaN, their sum 0.
template <class T>
tensor<T> reduce_float(tensor<T> const& x, std::vector<std::size_t> const& axes, bool keepdims, reduce_op op)
{
    const auto r = reduction_of(x.shape(), axes, keepdims);
    tensor<T> y = tensor<T>::from_shape(r.shape);
    T const* px = x.data();
    for (std::size_t k = 0; k < r.kept.size(); ++k) {
        double acc = op == reduce_op::max   ? -std::numeric_limits<double>::infinity()
                     : op == reduce_op::min ? std::numeric_limits<double>::infinity()
                                            : 0.0;
        for (auto off : r.reduced) {
            const double v = double(px[r.kept[k] + off]);
            if (op == reduce_op::max)
                acc = std::isnan(v) || v > acc ? v : acc;
            else if (op == reduce_op::min)
                acc = std::isnan(v) || v < acc ? v : acc;
            else
                acc += v;
            if (std::isnan(acc)) break;
        }
        if (op == reduce_op::mean) acc /= double(r.reduced.size());
        y.data()[k] = T(acc);
    }
    return y;
}

} // namespace kernels

// The reduction in V: each addition rounded as V rounds, the mean divided once
// (divide(sum, count)), in the order of kernels::reduction.
template <class V>
tensor<V> reduce(tensor<V> const& x, std::vector<std::size_t> const& axes, bool keepdims, reduce_op op)
{
    const auto r = kernels::reduction_of(x.shape(), axes, keepdims);
    tensor<V> y = tensor<V>::from_shape(r.shape);
    for (std::size_t k = 0; k < r.kept.size(); ++k) {
        V acc = op == reduce_op::max || op == reduce_op::min ? x.data()[r.kept[k]] : V(0);
        for (auto off : r.reduced) {
            const V v = x.data()[r.kept[k] + off];
            using std::max;
            using std::min;
            acc = op == reduce_op::max ? max(acc, v) : op == reduce_op::min ? min(acc, v) : acc + v;
        }
        if (op == reduce_op::mean) acc = divide(acc, std::int64_t(r.reduced.size()));
        y.data()[k] = acc;
    }
    return y;
}

// reduce on quantized_rt under q's format, computed faster: partial sums in double (exact
// for values of the format), rounded after each addition in the same order; the mean's
// division by the number type, one threshold per output (a stochastic q: block 1).
inline tensor<float> reduce_intrinsic(tensor<float> const& xq, std::vector<std::size_t> const& axes, bool keepdims,
                                      reduce_op op, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "reduce");
    if (op == reduce_op::max || op == reduce_op::min) return kernels::reduce_float(xq, axes, keepdims, op);
    const auto r = kernels::reduction_of(xq.shape(), axes, keepdims);
    std::vector<double> acc(r.kept.size(), 0.0);
    for (auto off : r.reduced) {
        for (std::size_t k = 0; k < r.kept.size(); ++k) acc[k] += double(xq.data()[r.kept[k] + off]);
        quantize_inplace(q, std::span<double>(acc));
    }
    tensor<float> y = tensor<float>::from_shape(r.shape);
    if (op == reduce_op::sum) {
        std::copy(acc.begin(), acc.end(), y.data());
        return y;
    }
    number_scope scope(q);
    stochastic_scope stream(q.key(), kernels::intrinsic_operand_offset(1));
    for (std::size_t k = 0; k < acc.size(); ++k)
        y.data()[k] = divide(quantized_rt<float>::from_raw(float(acc[k])), std::int64_t(r.reduced.size())).value();
    return y;
}

namespace tape_ops {

template <class Tape>
typename Tape::var reduce(Tape& t, typename Tape::var x, std::vector<std::size_t> const& axes, bool keepdims,
                          reduce_op op)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    return t.record(kernels::reduce_float(t.value(x), axes, keepdims, op),
                    [x, axes, keepdims, op](Tape& tp, V out) {
                        const auto r = kernels::reduction_of(tp.value(x).shape(), axes, keepdims);
                        T const* xv = tp.value(x).data();
                        T const* yv = tp.value(out).data();
                        T const* dy = tp.grad(out).data();
                        T* dx = tp.grad(x).data();
                        const T scale = op == reduce_op::mean ? T(1) / T(r.reduced.size()) : T(1);
                        for (std::size_t k = 0; k < r.kept.size(); ++k)
                            for (auto off : r.reduced) {
                                const std::size_t i = r.kept[k] + off;
                                if (op == reduce_op::sum || op == reduce_op::mean) {
                                    dx[i] += dy[k] * scale;
                                } else if (xv[i] == yv[k]) { // the first extreme element
                                    dx[i] += dy[k];
                                    break;
                                }
                            }
                    },
                    {x});
}

} // namespace tape_ops

struct reduce_layer
{
    static constexpr std::string_view kind = "reduce";
    reduce_op op = reduce_op::mean;
    std::vector<std::size_t> axes; // of the tensor as the network holds it
    bool keepdims = true;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::reduce_float(ctx.input(0), axes, keepdims, op);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return reduce_intrinsic(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), axes,
                                keepdims, op, q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::reduce(ctx.tape(), ctx.input(0), axes, keepdims, op);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// Softmax and log-softmax along one axis of a tensor of any rank (or, as ONNX before
// opset 13, over the trailing axes from `axis` on taken together), in floating point only:
// exp is not yet an operation of the number types, so it has no intrinsic form. The float
// path subtracts the maximum, sums the exponentials in double in index order and rounds
// each result once. Trained as the last layer, it is left to the loss (softmax
// cross-entropy on its input).
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "flatten.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// The rows a softmax runs over: outer x inner rows of `length` elements `stride` apart.
struct softmax_rows
{
    std::size_t outer = 1, length = 1, inner = 1;
};
template <class S>
softmax_rows softmax_rows_of(S const& shape, int axis, bool trailing)
{
    const int rank = int(shape.size());
    if (rank == 0) return {};
    const int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
        throw shape_error("softmax: axis " + std::to_string(axis) + " is outside a tensor of shape " +
                          shape_string(shape));
    softmax_rows r;
    for (int d = 0; d < rank; ++d) (d < a ? r.outer : d == a || trailing ? r.length : r.inner) *= shape[std::size_t(d)];
    return r;
}

// y = softmax (or log-softmax) of x along the rows; T float or double.
template <class T>
void softmax_along(T const* x, T* y, softmax_rows const& r, bool log)
{
    for (std::size_t o = 0; o < r.outer; ++o)
        for (std::size_t i = 0; i < r.inner; ++i) {
            const std::size_t base = o * r.length * r.inner + i;
            double m = -std::numeric_limits<double>::infinity();
            for (std::size_t j = 0; j < r.length; ++j) m = std::max(m, double(x[base + j * r.inner]));
            double s = 0;
            for (std::size_t j = 0; j < r.length; ++j) s += std::exp(double(x[base + j * r.inner]) - m);
            const double ls = std::log(s);
            for (std::size_t j = 0; j < r.length; ++j) {
                const double d = double(x[base + j * r.inner]) - m;
                y[base + j * r.inner] = T(log ? d - ls : std::exp(d) / s);
            }
        }
}

} // namespace kernels

// Row-wise softmax of [N, F].
template <std::floating_point T>
tensor2<T> softmax(tensor2<T> const& x)
{
    tensor2<T> y = tensor2<T>::from_shape(x.shape());
    kernels::softmax_along(x.data(), y.data(), kernels::softmax_rows_of(x.shape(), 1, false), false);
    return y;
}

namespace tape_ops {

// Softmax (or log-softmax) along an axis (the last by default).
template <class Tape>
typename Tape::var softmax(Tape& t, typename Tape::var x, int axis = -1, bool trailing = false, bool log = false)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    const auto r = kernels::softmax_rows_of(xv.shape(), axis, trailing);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape());
    kernels::softmax_along(xv.data(), y.data(), r, log);
    return t.record(std::move(y),
                    [x, r, log](Tape& tp, V o) {
                        T const* y = tp.value(o).data();
                        T const* dy = tp.grad(o).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t a = 0; a < r.outer; ++a)
                            for (std::size_t i = 0; i < r.inner; ++i) {
                                const std::size_t base = a * r.length * r.inner + i;
                                T dot = 0;
                                // softmax: dx = y (dy - sum(dy y)); log-softmax: dx = dy - e^y sum(dy)
                                for (std::size_t j = 0; j < r.length; ++j) {
                                    const std::size_t k = base + j * r.inner;
                                    dot += log ? dy[k] : dy[k] * y[k];
                                }
                                for (std::size_t j = 0; j < r.length; ++j) {
                                    const std::size_t k = base + j * r.inner;
                                    dx[k] += log ? dy[k] - std::exp(y[k]) * dot : y[k] * (dy[k] - dot);
                                }
                            }
                    },
                    {x});
}

} // namespace tape_ops

struct softmax_layer
{
    static constexpr std::string_view kind = "softmax";
    int axis = -1;         // of the tensor as the network holds it; negative: from the end
    bool trailing = false; // over axes [axis, rank) together (ONNX before opset 13)
    bool log = false;      // log-softmax

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        auto const& x = ctx.input(0);
        tensor<float> y = tensor<float>::from_shape(x.shape());
        kernels::softmax_along(x.data(), y.data(), kernels::softmax_rows_of(x.shape(), axis, trailing), log);
        return y;
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx&, fixed_point_rt const&) const
    {
        throw config_error(std::string(log ? "log-" : "") + "softmax has no intrinsic form");
    }
    std::string intrinsic_problem(fixed_point_rt const&) const
    {
        return std::string(log ? "log-" : "") + "softmax has no intrinsic form (exp)";
    }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return ctx.is_last() && !log ? ctx.input(0) : tape_ops::softmax(ctx.tape(), ctx.input(0), axis, trailing, log);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// Row-wise softmax, in floating point only (exp is not an operation of the number types,
// so it has no intrinsic form). Trained as the last layer, it is left to the loss
// (softmax cross-entropy on its input).
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

// Row-wise softmax, in floating point only (exp is not an operation of the number types).
template <std::floating_point T>
tensor2<T> softmax(tensor2<T> const& x)
{
    tensor2<T> y = tensor2<T>::from_shape(x.shape());
    for (std::size_t r = 0; r < x.shape(0); ++r) {
        T m = -std::numeric_limits<T>::infinity(), s = 0;
        for (std::size_t j = 0; j < x.shape(1); ++j) m = std::max(m, x(r, j));
        for (std::size_t j = 0; j < x.shape(1); ++j) s += (y(r, j) = std::exp(x(r, j) - m));
        for (std::size_t j = 0; j < x.shape(1); ++j) y(r, j) /= s;
    }
    return y;
}

namespace tape_ops {

// Softmax over the last axis.
template <class Tape>
typename Tape::var softmax(Tape& t, typename Tape::var x)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    const std::size_t k = xv.shape(xv.dimension() - 1), rows = xv.size() / std::max<std::size_t>(k, 1);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape());
    for (std::size_t r = 0; r < rows; ++r) {
        T const* in = xv.data() + r * k;
        T* out = y.data() + r * k;
        const T mx = *std::max_element(in, in + k);
        T s = 0;
        for (std::size_t j = 0; j < k; ++j) s += (out[j] = std::exp(in[j] - mx));
        for (std::size_t j = 0; j < k; ++j) out[j] /= s;
    }
    return t.record(std::move(y),
                    [x, k, rows](Tape& tp, V o) {
                        T const* y = tp.value(o).data();
                        T const* dy = tp.grad(o).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t r = 0; r < rows; ++r) { // dx = y (dy - sum(dy y))
                            T dot = 0;
                            for (std::size_t j = 0; j < k; ++j) dot += dy[r * k + j] * y[r * k + j];
                            for (std::size_t j = 0; j < k; ++j) dx[r * k + j] += y[r * k + j] * (dy[r * k + j] - dot);
                        }
                    },
                    {x});
}

} // namespace tape_ops

struct softmax_layer
{
    static constexpr std::string_view kind = "softmax";

    template <class Ctx>
    tensor4<float> forward(Ctx& ctx) const
    {
        return kernels::as4(nn::softmax(nn::flatten(ctx.input(0))));
    }
    template <class Ctx>
    tensor4<float> forward_intrinsic(Ctx&, fixed_point_rt const&) const
    {
        throw config_error("softmax has no intrinsic form");
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return "softmax has no intrinsic form (exp)"; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return ctx.is_last() ? ctx.input(0) : tape_ops::softmax(ctx.tape(), ctx.input(0));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

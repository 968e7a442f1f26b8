// Layer normalization (ONNX's LayerNormalization, and the ReduceMean / Sub / Pow /
// ReduceMean / Add / Sqrt / Div / Mul / Add pattern exporters write before opset 17): each
// row of the trailing axes [axis, rank) is normalized by its mean and variance, then
// scaled and shifted per element. Float path: mean and variance in double, each result
// rounded once. No intrinsic form yet: it needs the number type's correctly rounded
// elementary functions (a fixed-point map that reaches it is refused).
#pragma once

#include "../../config.hpp"

#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"
#include "softmax.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// rows x length: the rows a layer norm over [axis, rank) normalizes.
template <class S>
std::pair<std::size_t, std::size_t> norm_rows(S const& shape, int axis)
{
    const auto r = softmax_rows_of(shape, axis, true);
    return {r.outer, r.length};
}

template <class T, class S>
void layer_norm_rows(T const* x, T* y, std::size_t rows, std::size_t n, S const* scale, S const* bias, double epsilon,
                     T* xhat = nullptr, T* inv = nullptr)
{
    for (std::size_t r = 0; r < rows; ++r) {
        T const* in = x + r * n;
        double m = 0, v = 0;
        for (std::size_t j = 0; j < n; ++j) m += double(in[j]);
        m /= double(n);
        for (std::size_t j = 0; j < n; ++j) v += (double(in[j]) - m) * (double(in[j]) - m);
        v /= double(n);
        const double s = 1 / std::sqrt(v + epsilon);
        if (inv) inv[r] = T(s);
        for (std::size_t j = 0; j < n; ++j) {
            const double h = (double(in[j]) - m) * s;
            if (xhat) xhat[r * n + j] = T(h);
            y[r * n + j] = T(h * double(scale[j]) + (bias ? double(bias[j]) : 0.0));
        }
    }
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var layer_norm(Tape& t, typename Tape::var x, typename Tape::var scale, typename Tape::var bias,
                              int axis, double epsilon)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    const auto shape = kernels::norm_rows(xv.shape(), axis);
    const std::size_t rows = shape.first, n = shape.second; // (clang 14 cannot capture structured bindings)
    if (t.value(scale).size() != n || t.value(bias).size() != n)
        throw shape_error("layer_norm: scale and bias need " + std::to_string(n) + " values");
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape()), xhat = y;
    std::vector<T> inv(rows);
    kernels::layer_norm_rows(xv.data(), y.data(), rows, n, t.value(scale).data(), t.value(bias).data(), epsilon,
                             xhat.data(), inv.data());
    return t.record(std::move(y),
                    [x, scale, bias, rows, n, inv = std::move(inv), xhat = std::move(xhat)](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* sc = tp.value(scale).data();
                        T const* h = xhat.data();
                        for (std::size_t r = 0; r < rows; ++r) {
                            T sum_g = 0, sum_gh = 0;
                            for (std::size_t j = 0; j < n; ++j) {
                                const T g = dy[r * n + j] * sc[j];
                                sum_g += g, sum_gh += g * h[r * n + j];
                                if (tp.needs_grad(scale)) tp.grad(scale).data()[j] += dy[r * n + j] * h[r * n + j];
                                if (tp.needs_grad(bias)) tp.grad(bias).data()[j] += dy[r * n + j];
                            }
                            if (tp.needs_grad(x)) {
                                T* dx = tp.grad(x).data() + r * n;
                                for (std::size_t j = 0; j < n; ++j)
                                    dx[j] +=
                                        inv[r] / T(n) * (T(n) * dy[r * n + j] * sc[j] - sum_g - h[r * n + j] * sum_gh);
                            }
                        }
                    },
                    {x, scale, bias});
}

} // namespace tape_ops

struct layer_norm_layer
{
    static constexpr std::string_view kind = "layer_norm";
    tensor1<float> scale, bias; // one per element of a row
    int axis = -1;              // rows are the axes [axis, rank) of the tensor as the network holds it
    float epsilon = 1e-5f;

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"scale", true, false}, self.scale);
        fn(parameter_info{"bias", true, false}, self.bias);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        auto const& x = ctx.input(0);
        const auto [rows, n] = kernels::norm_rows(x.shape(), axis);
        const auto s = ctx.param(0, scale);
        const auto b = ctx.param(1, bias);
        if (s.size() != n || b.size() != n)
            throw shape_error("layer_norm: scale and bias have " + std::to_string(s.size()) + " and " +
                              std::to_string(b.size()) + " values for rows of " + std::to_string(n));
        tensor<float> y = tensor<float>::from_shape(x.shape());
        kernels::layer_norm_rows(x.data(), y.data(), rows, n, s.data(), b.data(), double(epsilon));
        return y;
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx&, fixed_point_rt const& q) const
    {
        throw config_error(intrinsic_problem(q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const
    {
        return "layer normalization has no intrinsic form yet (it needs correctly rounded elementary functions of "
               "the number type)";
    }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::layer_norm(ctx.tape(), ctx.input(0), ctx.param(0), ctx.param(1), axis, double(epsilon));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

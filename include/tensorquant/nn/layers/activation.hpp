// Activations: ReLU, ReLU6, leaky ReLU and the logistic sigmoid, as a layer of their own
// and fused into the layers that end in one (conv2d, dense, batch norm, add).
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class activation { none, relu, relu6, leaky_relu, sigmoid };

// 1 / (1 + e^-x) in double: within an ulp of double of the exact value.
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <class V, class E>
auto activate(E const& x, activation a, double alpha = 0.2)
{
    using std::max;
    using std::min;
    auto y = xt::eval(x);
    switch (a) {
    case activation::none:
        break;
    case activation::relu:
        for (auto& v : y) v = max(v, V(0));
        break;
    case activation::relu6:
        for (auto& v : y) v = min(max(v, V(0)), V(6));
        break;
    case activation::leaky_relu: {
        const V slope(alpha);
        for (auto& v : y) v = v < V(0) ? v * slope : v;
        break;
    }
    case activation::sigmoid:
        for (auto& v : y) v = V(sigmoid(double(v)));
        break;
    }
    return y;
}

namespace kernels {

// The sigmoid of y computed in double and rounded once to q's format (never through float):
// the correctly rounded sigmoid unless the exact value lies within an ulp of double of one of
// the format's rounding boundaries (the tests find no such case on exhaustive small formats).
// Where the double saturates to 1 (x > 37) or 0 (x < -745) the exact value is strictly
// inside (0, 1), so the nearest double inside stands for it: rounding down or toward zero
// then gives the largest value below 1, as it must.
template <class Q>
void sigmoid_rounded(Q const& q, tensor4<float>& y, apply_options const& o)
{
    std::vector<double> s(y.size());
    std::transform(y.begin(), y.end(), s.begin(), [](float v) {
        const double r = sigmoid(double(v));
        return r == 1.0 ? std::nextafter(1.0, 0.0) : r == 0.0 ? std::nextafter(0.0, 1.0) : r;
    });
    quantize_inplace(q, std::span<double>(s), o);
    std::transform(s.begin(), s.end(), y.begin(), [](double v) { return float(v); }); // in the format: exact
}

inline tensor4<float> activate_float(tensor4<float> y, activation a, double alpha)
{
    return a == activation::none ? y : activate<float>(y, a, alpha);
}

// Activation of an intrinsic output (already in the format): the exact ones are applied in
// float then rounded once; leaky ReLU's product goes through the number type.
inline tensor4<float> activate_intrinsic(tensor4<float> y, activation a, double alpha, fixed_point_rt const& q)
{
    if (a == activation::none) return y;
    if (a == activation::leaky_relu) {
        // negative x: x * Q(alpha), rounded once; a stochastic q draws element i's threshold
        // at position i of the activation stream (the slope's at the block before it)
        number_scope scope(q);
        using V = quantized_rt<float>;
        V slope;
        {
            stochastic_scope stream(q.key(), intrinsic_activation_offset - (std::uint64_t(1) << 32));
            slope = V(alpha);
        }
        float* d = y.data();
        for (std::size_t i = 0; i < y.size(); ++i)
            if (d[i] < 0) {
                stochastic_scope stream(q.key(), intrinsic_activation_offset + i);
                d[i] = (V::from_raw(d[i]) * slope).value();
            }
        return y;
    }
    apply_options o;
    o.index_offset = intrinsic_activation_offset;
    if (a == activation::sigmoid) {
        sigmoid_rounded(q, y, o);
        return y;
    }
    y = activate<float>(y, a, alpha);
    quantize_inplace(q, std::span<float>(y.data(), y.size()), o);
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var activate(Tape& t, typename Tape::var x, activation a, double alpha = 0.2)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    if (a == activation::none) return x;
    xt::xarray<T> y = t.value(x);
    T* d = y.data();
    const T slope = T(alpha);
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (a == activation::relu)
            d[i] = std::max(d[i], T(0));
        else if (a == activation::relu6)
            d[i] = std::min(std::max(d[i], T(0)), T(6));
        else if (a == activation::sigmoid)
            d[i] = T(sigmoid(double(d[i])));
        else
            d[i] = d[i] < T(0) ? d[i] * slope : d[i];
    }
    return t.record(std::move(y),
                    [x, a, slope](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T const* yv = tp.value(out).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t i = 0; i < tp.value(x).size(); ++i) {
                            const T v = xv[i];
                            T g;
                            if (a == activation::relu)
                                g = v > T(0) ? T(1) : T(0);
                            else if (a == activation::relu6)
                                g = v > T(0) && v < T(6) ? T(1) : T(0);
                            else if (a == activation::sigmoid)
                                g = yv[i] * (T(1) - yv[i]);
                            else
                                g = v < T(0) ? slope : T(1);
                            dx[i] += g * dy[i];
                        }
                    },
                    {x});
}

} // namespace tape_ops

struct activation_layer
{
    static constexpr std::string_view kind = "activation";
    activation act = activation::relu;
    double alpha = 0.2;

    template <class Ctx>
    tensor4<float> forward(Ctx& ctx) const
    {
        return kernels::activate_float(ctx.input(0), act, alpha);
    }
    template <class Ctx>
    tensor4<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::activate_intrinsic(
            kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), act, alpha, q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::activate(ctx.tape(), ctx.input(0), act, alpha);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

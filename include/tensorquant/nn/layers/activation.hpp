// Element-wise functions: the activations (ReLU, ReLU6, leaky ReLU, sigmoid, hard sigmoid,
// hard swish, tanh, erf, GELU) and the unary operators (negation, absolute value, square
// root, reciprocal), as a layer of their own on tensors of any rank, and fused into the
// layers that end in one (conv2d, dense, batch norm, the element-wise binary layers).
//
// Float path: each function is evaluated in double and rounded once to float.
// Intrinsic path (every value in the layer's fixed-point format q): ReLU, ReLU6, negation
// and the absolute value are exact on values of the format and rounded once (saturating or
// wrapping as q says); leaky ReLU rounds x Q(alpha); hard sigmoid rounds Q(alpha) x, then
// adds Q(beta) and rounds, then clamps to [0, Q(1)]; hard swish multiplies x by that hard
// sigmoid (alpha = Q(1/6), beta = Q(1/2)) and rounds; the square root and the reciprocal are
// rounded once from their exact values; the sigmoid is computed in double and rounded once.
// tanh, erf and GELU have no intrinsic form yet (they need correctly rounded elementary
// functions of the number type).
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class activation {
    none,
    relu,
    relu6,
    leaky_relu,
    sigmoid,
    hard_sigmoid,
    hard_swish,
    tanh,
    erf,
    gelu,      // x Phi(x), with erf
    gelu_tanh, // GELU's tanh approximation
    neg,
    abs,
    sqrt,
    reciprocal,
};

// What the library knows of each element-wise function; names and checks derive from it.
struct activation_info
{
    activation kind;
    std::string_view name;
    bool intrinsic; // has an intrinsic fixed-point form
    bool fusable;   // an importer may fuse it into the layer before
};
inline constexpr std::array activation_table{
    activation_info{activation::none, "none", true, true},
    activation_info{activation::relu, "relu", true, true},
    activation_info{activation::relu6, "relu6", true, true},
    activation_info{activation::leaky_relu, "leaky_relu", true, true},
    activation_info{activation::sigmoid, "sigmoid", true, true},
    activation_info{activation::hard_sigmoid, "hard_sigmoid", true, true},
    activation_info{activation::hard_swish, "hard_swish", true, true},
    activation_info{activation::tanh, "tanh", false, false},
    activation_info{activation::erf, "erf", false, false},
    activation_info{activation::gelu, "gelu", false, false},
    activation_info{activation::gelu_tanh, "gelu_tanh", false, false},
    activation_info{activation::neg, "neg", true, false},
    activation_info{activation::abs, "abs", true, false},
    activation_info{activation::sqrt, "sqrt", true, false},
    activation_info{activation::reciprocal, "reciprocal", true, false},
};
constexpr activation_info const& info_of(activation a) noexcept
{
    return activation_table[static_cast<std::size_t>(a)];
}
static_assert([] {
    for (std::size_t i = 0; i < activation_table.size(); ++i)
        if (static_cast<std::size_t>(activation_table[i].kind) != i) return false;
    return true;
}());

// An element-wise function with its parameters: alpha is leaky ReLU's slope and hard
// sigmoid's, beta hard sigmoid's offset (hard swish is hard sigmoid's 1/6 and 1/2).
struct activation_fn
{
    activation kind = activation::none;
    double alpha = 0.2;
    double beta = 0.5;

    constexpr activation_fn() = default;
    constexpr activation_fn(activation k, double a = 0.2, double b = 0.5) : kind(k), alpha(a), beta(b) {}
    friend constexpr bool operator==(activation_fn const&, activation_fn const&) = default;
    friend constexpr bool operator==(activation_fn const& f, activation k) noexcept { return f.kind == k; }
    constexpr double slope() const noexcept { return kind == activation::hard_swish ? 1.0 / 6 : alpha; }
    constexpr double offset() const noexcept { return kind == activation::hard_swish ? 0.5 : beta; }
};

// f with its parameters rounded to V (ONNX's float attributes), each rounding out of line:
// GCC 12's SLP vectorizer pairs double(float(alpha)) with double(float(beta)) and drops both
// roundings (Debian 12's g++ 12.2 at -O2).
template <class V>
[[gnu::noinline]] double rounded_as(double v) noexcept
{
    return double(V(v));
}
template <class V>
activation_fn with_parameters_of(activation_fn const& f)
{
    return activation_fn(f.kind, rounded_as<V>(f.alpha), rounded_as<V>(f.beta));
}

// Layers that end in a fused activation: a member `act`.
template <class L>
concept fuses_activation = requires(L& l)
{
    {
        l.act
        } -> std::convertible_to<activation_fn>;
};

// 1 / (1 + e^-x) in double: within an ulp of double of the exact value.
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

namespace kernels {

inline double hard_sigmoid(double x, double alpha, double beta) { return std::clamp(alpha * x + beta, 0.0, 1.0); }

// f(x) in double (x and the parameters as given).
inline double activate_double(double x, activation_fn const& f)
{
    constexpr double sqrt1_2 = 0.70710678118654752440;
    switch (f.kind) {
    case activation::none:
        return x;
    case activation::relu:
        return x < 0 ? 0.0 : x; // NaN stays NaN
    case activation::relu6:
        return x < 0 ? 0.0 : x > 6 ? 6.0 : x;
    case activation::leaky_relu:
        return x < 0 ? x * f.alpha : x;
    case activation::sigmoid:
        return nn::sigmoid(x);
    case activation::hard_sigmoid:
        return std::isnan(x) ? x : hard_sigmoid(x, f.alpha, f.beta);
    case activation::hard_swish:
        return std::isnan(x) ? x : x * hard_sigmoid(x, 1.0 / 6, 0.5);
    case activation::tanh:
        return std::tanh(x);
    case activation::erf:
        return std::erf(x);
    case activation::gelu:
        return 0.5 * x * (1 + std::erf(x * sqrt1_2));
    case activation::gelu_tanh: {
        const double c = std::sqrt(2 / std::numbers::pi);
        return 0.5 * x * (1 + std::tanh(c * (x + 0.044715 * x * x * x)));
    }
    case activation::neg:
        return -x;
    case activation::abs:
        return std::fabs(x);
    case activation::sqrt:
        return std::sqrt(x);
    case activation::reciprocal:
        return 1 / x;
    }
    return x;
}

// f'(x) given x and y = f(x), for the backward pass.
inline double activation_slope(double x, double y, activation_fn const& f)
{
    constexpr double two_over_sqrt_pi = 1.12837916709551257390, inv_sqrt_2pi = 0.39894228040143267794;
    switch (f.kind) {
    case activation::none:
        return 1;
    case activation::relu:
        return x > 0 ? 1 : 0;
    case activation::relu6:
        return x > 0 && x < 6 ? 1 : 0;
    case activation::leaky_relu:
        return x < 0 ? f.alpha : 1;
    case activation::sigmoid:
        return y * (1 - y);
    case activation::hard_sigmoid: {
        const double t = f.alpha * x + f.beta;
        return t > 0 && t < 1 ? f.alpha : 0;
    }
    case activation::hard_swish:
        return x <= -3 ? 0 : x >= 3 ? 1 : (2 * x + 3) / 6;
    case activation::tanh:
        return 1 - y * y;
    case activation::erf:
        return two_over_sqrt_pi * std::exp(-x * x);
    case activation::gelu:
        return 0.5 * (1 + std::erf(x * 0.70710678118654752440)) + x * inv_sqrt_2pi * std::exp(-0.5 * x * x);
    case activation::gelu_tanh: {
        const double c = std::sqrt(2 / std::numbers::pi), u = c * (x + 0.044715 * x * x * x), t = std::tanh(u);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
    }
    case activation::neg:
        return -1;
    case activation::abs:
        return x < 0 ? -1 : x > 0 ? 1 : 0;
    case activation::sqrt:
        return 0.5 / y;
    case activation::reciprocal:
        return -y * y;
    }
    return 1;
}

// The constants of f in a number type V, each rounded once (before any element).
template <class V>
struct activation_constants
{
    V slope, offset, zero, one, six;
    explicit activation_constants(activation_fn const& f)
        : slope(f.slope()), offset(f.offset()), zero(0), one(1), six(6)
    {}
};

// f(x) of a number type V: each operation rounds as V does; functions without an
// intrinsic form are refused.
template <class V>
V activate_number(V v, activation_fn const& f, activation_constants<V> const& c)
{
    using std::max;
    using std::min;
    switch (f.kind) {
    case activation::none:
        return v;
    case activation::relu:
        return max(v, c.zero);
    case activation::relu6:
        return min(max(v, c.zero), c.six);
    case activation::leaky_relu:
        return v < c.zero ? v * c.slope : v;
    case activation::sigmoid:
        return V(nn::sigmoid(double(v)));
    case activation::hard_sigmoid:
    case activation::hard_swish: {
        const V h = min(max(c.slope * v + c.offset, c.zero), c.one);
        return f.kind == activation::hard_swish ? v * h : h;
    }
    case activation::neg:
        return -v;
    case activation::abs:
        return v < c.zero ? -v : v;
    case activation::sqrt: {
        using std::sqrt;
        return sqrt(v);
    }
    case activation::reciprocal:
        if constexpr (requires { reciprocal(v); })
            return reciprocal(v); // exact, rounded once
        else
            return c.one / v;
    default:
        throw config_error(std::string(info_of(f.kind).name) + " has no intrinsic form (it needs correctly rounded "
                                                               "elementary functions of the number type)");
    }
}

} // namespace kernels

// f applied element by element: floating-point V in double with the parameters rounded
// to V, rounded once; number types through their own operations (kernels::activate_number).
template <class V, class E>
auto activate(E const& x, activation_fn const& f)
{
    auto y = xt::eval(x);
    if (f.kind == activation::none) return y;
    if constexpr (std::is_floating_point_v<V>) {
        const activation_fn g = with_parameters_of<V>(f);
        for (auto& v : y) v = V(kernels::activate_double(double(v), g));
    } else {
        const kernels::activation_constants<V> c(f);
        for (auto& v : y) v = kernels::activate_number(V(v), f, c);
    }
    return y;
}
template <class V, class E>
auto activate(E const& x, activation a, double alpha = 0.2)
{
    return activate<V>(x, activation_fn(a, alpha));
}

namespace kernels {

// The sigmoid of y computed in double and rounded once to q's format (never through float):
// the correctly rounded sigmoid unless the exact value lies within an ulp of double of one of
// the format's rounding boundaries (the tests find no such case on exhaustive small formats).
// Where the double saturates to 1 (x > 37) or 0 (x < -745) the exact value is strictly
// inside (0, 1), so the nearest double inside stands for it: rounding down or toward zero
// then gives the largest value below 1, as it must.
template <class Q, class Tensor>
void sigmoid_rounded(Q const& q, Tensor& y, apply_options const& o)
{
    std::vector<double> s(y.size());
    std::transform(y.begin(), y.end(), s.begin(), [](float v) {
        const double r = sigmoid(double(v));
        return r == 1.0 ? std::nextafter(1.0, 0.0) : r == 0.0 ? std::nextafter(0.0, 1.0) : r;
    });
    quantize_inplace(q, std::span<double>(s), o);
    std::transform(s.begin(), s.end(), y.begin(), [](double v) { return float(v); }); // in the format: exact
}

// On float tensors the parameters are floats, as in ONNX (x alpha rounds once, as a float
// product does).
// The piecewise-linear activations whose float result is exactly the double one (a
// comparison, or one product of two floats, exact in double and then rounded once) run in
// SIMD lanes; the others element by element in double.
inline void activate_float_inplace(float* y, std::size_t n, activation_fn const& g)
{
    using B = xsimd::batch<float>;
    constexpr std::size_t L = B::size;
    auto lanes = [&](auto fn) {
        std::size_t i = 0;
        for (; i + L <= n; i += L) fn(B::load_unaligned(y + i)).store_unaligned(y + i);
        for (; i < n; ++i) y[i] = fn(B(y[i])).get(0);
    };
    const B zero(0.0f), six(6.0f), alpha(float(g.alpha));
    switch (g.kind) {
    case activation::none:
        return;
    case activation::relu: // x < 0 ? 0 : x, NaN and -0 kept
        return lanes([&](B x) { return xsimd::select(x < zero, zero, x); });
    case activation::relu6:
        return lanes([&](B x) { return xsimd::select(x < zero, zero, xsimd::select(x > six, six, x)); });
    case activation::leaky_relu:
        return lanes([&](B x) { return xsimd::select(x < zero, x * alpha, x); });
    case activation::neg:
        return lanes([&](B x) { return -x; });
    default:
        for (std::size_t i = 0; i < n; ++i) y[i] = float(activate_double(double(y[i]), g));
    }
}

template <class Tensor>
Tensor activate_float(Tensor y, activation_fn const& f)
{
    if (f.kind == activation::none) return y;
    activate_float_inplace(y.data(), y.size(), with_parameters_of<float>(f));
    return y;
}

// Why f cannot run intrinsically ("" when it can).
inline std::string activation_problem(activation_fn const& f)
{
    if (info_of(f.kind).intrinsic) return "";
    return std::string(info_of(f.kind).name) +
           " has no intrinsic form yet (it needs correctly rounded elementary functions of the number type)";
}

// Activation of an intrinsic output (already in the format). Stream positions of a
// stochastic q: the constants (slope, offset) at the block before the activation block,
// element i's roundings at positions 4 i, 4 i + 1, ... of the activation block.
template <class Tensor>
Tensor activate_intrinsic(Tensor y, activation_fn const& f, fixed_point_rt const& q)
{
    if (f.kind == activation::none) return y;
    if (const auto problem = activation_problem(f); !problem.empty()) throw config_error(problem);
    apply_options o;
    o.index_offset = intrinsic_activation_offset;
    switch (f.kind) {
    case activation::relu:
    case activation::relu6:
    case activation::neg:
    case activation::abs: // exact on values of the format: rounded once (saturate or wrap)
        activate_float_inplace(y.data(), y.size(), f);
        quantize_inplace(q, std::span<float>(y.data(), y.size()), o);
        return y;
    case activation::sigmoid:
        sigmoid_rounded(q, y, o);
        return y;
    default:
        break;
    }
    number_scope scope(q);
    using V = quantized_rt<float>;
    const activation_constants<V> c = [&] {
        stochastic_scope stream(q.key(), intrinsic_activation_offset - (std::uint64_t(1) << 32));
        return activation_constants<V>(f);
    }();
    float* d = y.data();
    for (std::size_t i = 0; i < y.size(); ++i) {
        stochastic_scope stream(q.key(), intrinsic_activation_offset + 4 * i);
        d[i] = activate_number(V::from_raw(d[i]), f, c).value();
    }
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var activate(Tape& t, typename Tape::var x, activation_fn const& given)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    if (given.kind == activation::none) return x;
    const activation_fn f = with_parameters_of<T>(given);
    xt::xarray<T> y = t.value(x);
    for (auto& v : y) v = T(kernels::activate_double(double(v), f));
    return t.record(std::move(y),
                    [x, f](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T const* yv = tp.value(out).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t i = 0; i < tp.value(x).size(); ++i)
                            dx[i] += T(kernels::activation_slope(double(xv[i]), double(yv[i]), f)) * dy[i];
                    },
                    {x});
}
template <class Tape>
typename Tape::var activate(Tape& t, typename Tape::var x, activation a, double alpha = 0.2)
{
    return activate(t, x, activation_fn(a, alpha));
}

} // namespace tape_ops

// An element-wise function on a tensor of any rank.
struct activation_layer
{
    static constexpr std::string_view kind = "activation";
    activation_fn act = activation::relu;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::activate_float(ctx.input(0), act);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::activate_intrinsic(
            kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), act, q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::activate(ctx.tape(), ctx.input(0), act);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// Element-wise binary operations (add, subtract, multiply, divide, maximum, minimum, power)
// with numpy broadcasting, between two inputs or between an input and a constant operand
// (a parameter of the layer), with an optional fused activation. Residual connections are
// its `add` between two inputs of one shape (add_layer).
//
// Float path: a op b in float (IEEE, rounded once), the power in double rounded once; the
// maximum and minimum propagate NaN. Intrinsic path, with both operands first rounded to the
// layer's fixed-point format q: the sum, difference and product of two words of at most
// 26 bits are exact in double and rounded once; the quotient is rounded once from its
// exact value (the number type's division); the maximum and minimum are exact; a power
// x^n with a constant integer exponent 1 <= n <= 16 multiplies left to right, each product
// rounded ((x x) x ...). Other exponents have no intrinsic form.
#pragma once

#include "../../config.hpp"

#include "../kernels/broadcast.hpp"
#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class binary_op {
    add,
    sub,
    mul,
    div,
    max,
    min,
    pow,
};
inline constexpr std::array<std::string_view, 7> binary_op_names{"add", "sub", "mul", "div", "max", "min", "pow"};

namespace kernels {

// x^n for an integer 1 <= n <= 16 held by e, else nothing.
template <class V>
std::optional<int> small_integer_exponent(V e)
{
    const double d = double(e);
    if (!(d >= 1 && d <= 16) || d != std::floor(d)) return std::nullopt;
    return int(d);
}

// a op b in V: floating-point V (the power in double, rounded once; NaN propagates
// through the maximum and minimum) or a number type (each operation rounded as V rounds).
template <class V>
V apply_binary(V a, V b, binary_op op)
{
    using std::max;
    using std::min;
    switch (op) {
    case binary_op::add:
        return a + b;
    case binary_op::sub:
        return a - b;
    case binary_op::mul:
        return a * b;
    case binary_op::div:
        return a / b;
    case binary_op::max:
    case binary_op::min:
        if constexpr (std::is_floating_point_v<V>)
            if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<V>::quiet_NaN();
        return op == binary_op::max ? max(a, b) : min(a, b);
    case binary_op::pow:
        if constexpr (std::is_floating_point_v<V>) {
            return V(std::pow(double(a), double(b)));
        } else {
            const auto n = small_integer_exponent(b);
            if (!n) throw config_error("pow has an intrinsic form only for integer exponents 1 to 16");
            V r = a;
            for (int k = 1; k < *n; ++k) r = r * a;
            return r;
        }
    }
    return a;
}

} // namespace kernels

// a op b with numpy broadcasting.
template <class V>
tensor<V> binary(tensor<V> const& a, tensor<V> const& b, binary_op op)
{
    const auto p = kernels::broadcast_shapes(a.shape(), b.shape(), std::string(binary_op_names[std::size_t(op)]));
    tensor<V> y = tensor<V>::from_shape(p.shape);
    V const* pa = a.data();
    V const* pb = b.data();
    V* py = y.data();
    kernels::for_each_broadcast(
        p, [&](std::size_t i, std::size_t ia, std::size_t ib) { py[i] = kernels::apply_binary(pa[ia], pb[ib], op); });
    return y;
}

// The sum of two tensors of one shape.
template <class V>
tensor4<V> add(tensor4<V> const& a, tensor4<V> const& b)
{
    if (a.shape() != b.shape())
        throw shape_error("add: shapes " + kernels::shape_string(a.shape()) + " and " +
                          kernels::shape_string(b.shape()) + " differ");
    tensor4<V> y = tensor4<V>::from_shape(a.shape());
    for (std::size_t i = 0; i < a.size(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
    return y;
}

// Intrinsic a op b on operands already in q's format (see the file's comment). A stochastic
// q draws element i's rounding at position i of block 0 (a power's k-th product at 16 i + k).
inline tensor<float> binary_intrinsic(tensor<float> const& a, tensor<float> const& b, binary_op op,
                                      fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, binary_op_names[std::size_t(op)].data());
    const auto p = kernels::broadcast_shapes(a.shape(), b.shape(), std::string(binary_op_names[std::size_t(op)]));
    tensor<float> y = tensor<float>::from_shape(p.shape);
    float const* pa = a.data();
    float const* pb = b.data();
    float* py = y.data();
    switch (op) {
    case binary_op::add:
    case binary_op::sub:
    case binary_op::mul: {
        std::vector<double> exact(y.size());
        kernels::for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t ib) {
            exact[i] = kernels::apply_binary(double(pa[ia]), double(pb[ib]), op);
        });
        quantize_inplace(q, std::span<double>(exact));
        std::copy(exact.begin(), exact.end(), py);
        return y;
    }
    case binary_op::max:
    case binary_op::min:
        kernels::for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t ib) {
            py[i] = kernels::apply_binary(pa[ia], pb[ib], op);
        });
        return y;
    default: {
        number_scope scope(q);
        using R = quantized_rt<float>;
        kernels::for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t ib) {
            stochastic_scope stream(q.key(), op == binary_op::pow ? 16 * std::uint64_t(i) : i);
            py[i] = kernels::apply_binary(R::from_raw(pa[ia]), R::from_raw(pb[ib]), op).value();
        });
        return y;
    }
    }
}

namespace tape_ops {

template <class Tape>
typename Tape::var binary(Tape& t, typename Tape::var a, typename Tape::var b, binary_op op)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    const auto p = kernels::broadcast_shapes(t.value(a).shape(), t.value(b).shape(),
                                             std::string(binary_op_names[std::size_t(op)]));
    xt::xarray<T> y = nn::binary(t.value(a), t.value(b), op);
    return t.record(std::move(y),
                    [a, b, op, p](Tape& tp, V out) {
                        T const* av = tp.value(a).data();
                        T const* bv = tp.value(b).data();
                        T const* yv = tp.value(out).data();
                        T const* g = tp.grad(out).data();
                        T* ga = tp.needs_grad(a) ? tp.grad(a).data() : nullptr;
                        T* gb = tp.needs_grad(b) ? tp.grad(b).data() : nullptr;
                        kernels::for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t ib) {
                            const T x = av[ia], z = bv[ib], d = g[i];
                            T da = 0, db = 0;
                            switch (op) {
                            case binary_op::add:
                                da = d, db = d;
                                break;
                            case binary_op::sub:
                                da = d, db = -d;
                                break;
                            case binary_op::mul:
                                da = d * z, db = d * x;
                                break;
                            case binary_op::div:
                                da = d / z, db = -d * x / (z * z);
                                break;
                            case binary_op::max:
                                (x >= z ? da : db) = d;
                                break;
                            case binary_op::min:
                                (x <= z ? da : db) = d;
                                break;
                            case binary_op::pow:
                                da = d * z * T(std::pow(double(x), double(z) - 1));
                                db = x > 0 ? d * yv[i] * T(std::log(double(x))) : T(0);
                                break;
                            }
                            if (ga) ga[ia] += da;
                            if (gb) gb[ib] += db;
                        });
                    },
                    {a, b});
}

template <class Tape>
typename Tape::var add(Tape& t, typename Tape::var a, typename Tape::var b)
{
    return binary(t, a, b, binary_op::add);
}

} // namespace tape_ops

struct binary_layer
{
    static constexpr std::string_view kind = "elementwise";
    activation_fn act{}; // fused
    binary_op op = binary_op::add;
    tensor<float> constant = kernels::empty_tensor(); // the second operand (the first if
                                                      // constant_first); empty: two inputs
    bool constant_first = false;

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        if (self.constant.size()) fn(parameter_info{"constant", true, false}, self.constant);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return with_operands(
            ctx, [&](auto const& a, auto const& b) { return kernels::activate_float(binary(a, b, op), act); });
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return with_operands(ctx, [&](auto const& a, auto const& b) {
            return kernels::activate_intrinsic(
                binary_intrinsic(kernels::quantized_copy(q, a, kernels::intrinsic_operand_offset(0)),
                                 kernels::quantized_copy(q, b, kernels::intrinsic_operand_offset(1)), op, q),
                act, q);
        });
    }
    std::string intrinsic_problem(fixed_point_rt const&) const
    {
        if (op == binary_op::pow) {
            bool integer = constant.size() && !constant_first;
            for (std::size_t i = 0; integer && i < constant.size(); ++i)
                integer = kernels::small_integer_exponent(constant.data()[i]).has_value();
            if (!integer) return "pow has an intrinsic form only for a constant integer exponent from 1 to 16";
        }
        return kernels::activation_problem(act);
    }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        auto a = ctx.input(0);
        auto b = constant.size() ? ctx.param(0) : ctx.input(1);
        if (constant_first) std::swap(a, b);
        return tape_ops::activate(t, tape_ops::binary(t, a, b, op), act);
    }

private:
    template <class Ctx, class Fn>
    tensor<float> with_operands(Ctx& ctx, Fn&& fn) const
    {
        if (!constant.size()) return fn(ctx.input(0), ctx.input(1));
        const tensor<float> c = ctx.param(0, constant);
        return constant_first ? fn(c, ctx.input(0)) : fn(ctx.input(0), c);
    }
};

// Residual connections: the sum of two inputs, with an optional fused activation.
using add_layer = binary_layer;

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

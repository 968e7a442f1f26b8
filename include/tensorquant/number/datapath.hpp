// Operations across formats, as a hardware datapath has them: operands in one format,
// products exact, the accumulator in a wider one.
// - exact_product(a, b) of two fixed-point numbers: the product in the format that holds
//   every product exactly, fixed_point<Wa + Wb, Fa + Fb> (int8 x int8 -> int16 with the
//   fractional bits added), with a's policies; no rounding happens.
// - mac(a, b, c): c + a b with the product exact and one rounding into c's format (c's
//   rounding, then its overflow policy). For a fixed-point accumulator a and b are fixed
//   point too; for a minifloat accumulator they may be numbers of any format with the same
//   floating-point storage (FP8 x FP8 -> FP32, a stochastic accumulator draws one
//   threshold from the thread's stochastic_scope).
// - multiply<P>(a, b): the exact product rounded once into P; accumulate(p, c): c + p
//   rounded once into c's format.
// - datapath_of<In, Weights, Product, Acc, Out>: a layer's datapath as types, for the
//   generic conv2d and dense (nn/datapath.hpp is the same at run time); exact_step marks
//   a step that does not round.
#pragma once

#include "../config.hpp"

#include "quantized.hpp"
#include "stochastic_scope.hpp"

#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {
template <class Q>
struct fixed_parts : std::false_type
{
};
template <int W, int F, class R, class O, bool S>
struct fixed_parts<fixed_point<W, F, R, O, S>> : std::true_type
{
    static constexpr int width = W;
    static constexpr int frac = F;
    static constexpr bool is_signed = S;
    using rounding = R;
    using overflow = O;
};
template <class Q>
struct minifloat_parts : std::false_type
{
};
template <minifloat_format Fm, class R, minifloat_overflow O>
struct minifloat_parts<minifloat_of<Fm, R, O>> : std::true_type
{
};

// c + p 2^-pf rounded once into the words of ar's format (units 2^-F), then its overflow
// policy: the step of mac(), for formats known at run time too (j: stochastic threshold).
template <class R, class O>
constexpr int128 mac_word(fixed_arith<R, O> const& ar, int256 const& p, int pf, int128 c, std::uint64_t j = 0)
{
    const int shift = ar.format.frac - pf; // p in units of 2^-F is p 2^shift
    if (shift >= 0) return ar.fit((p << shift) + int256(c));
    return ar.fit(round_quotient<R>(p + (int256(c) << -shift), int256(1) << -shift, j));
}

template <class Qa, class Qb>
using exact_product_format =
    fixed_point<fixed_parts<Qa>::width + fixed_parts<Qb>::width, fixed_parts<Qa>::frac + fixed_parts<Qb>::frac,
                typename fixed_parts<Qa>::rounding, typename fixed_parts<Qa>::overflow,
                fixed_parts<Qa>::is_signed || fixed_parts<Qb>::is_signed>;
} // namespace detail

template <class T, class Qa, class Qb>
    requires(detail::fixed_parts<Qa>::value&& detail::fixed_parts<Qb>::value&& detail::fixed_parts<Qa>::width +
                 detail::fixed_parts<Qb>::width <=
             64)
constexpr quantized<T, detail::exact_product_format<Qa, Qb>> exact_product(quantized<T, Qa> a, quantized<T, Qb> b)
{
    using P = quantized<T, detail::exact_product_format<Qa, Qb>>;
    // values: exact, as the product format fits T (P checks it); words (integer storage):
    // (wa 2^-Fa)(wb 2^-Fb) = wa wb 2^-(Fa + Fb), and wa wb has at most Wa + Wb bits
    return P::from_raw(a.raw() * b.raw());
}

template <class T, class Qa, class Qb, class Acc>
    requires(detail::fixed_parts<Acc>::value&& detail::fixed_parts<Qa>::value&& detail::fixed_parts<Qb>::value)
constexpr quantized<T, Acc> mac(quantized<T, Qa> a, quantized<T, Qb> b, quantized<T, Acc> c)
{
    using codec = detail::storage_codec<T>;
    if (codec::isnan(a.raw()) || codec::isnan(b.raw()) || codec::isnan(c.raw()))
        return quantized<T, Acc>::from_raw(codec::nan("NaN"));
    constexpr int fa = Qa::format.frac, fb = Qb::format.frac, fc = Acc::format.frac;
    const detail::int256 p = detail::int256(codec::word(a.raw(), fa)) * detail::int256(codec::word(b.raw(), fb));
    constexpr detail::fixed_arith<typename Acc::rounding_policy, typename Acc::overflow_policy> ar{Acc::format};
    std::uint64_t j = 0;
    if constexpr (is_stochastic_rounding_v<typename Acc::rounding_policy>)
        if (fc < fa + fb) // only a rounding draws a threshold
            j = detail::threshold_bits(
                detail::next_threshold<std::conditional_t<std::is_floating_point_v<T>, T, double>, true>());
    const detail::int128 word = detail::mac_word(ar, p, fa + fb, codec::word(c.raw(), fc), j);
    return quantized<T, Acc>::from_raw(codec::raw(word, fc));
}

template <std::floating_point T, class Qa, class Qb, class Acc>
    requires(detail::minifloat_parts<Acc>::value)
constexpr quantized<T, Acc> mac(quantized<T, Qa> a, quantized<T, Qb> b, quantized<T, Acc> c)
{
    // the minifloat arithmetic decodes any T value exactly, so the operands' formats do
    // not matter: a b exact, + c, one rounding into Acc
    return quantized<T, Acc>::with_ops([&](auto const& o) { return o.fma(a.raw(), b.raw(), c.raw()); });
}

// a b rounded once into P (fixed point from fixed-point operands, or minifloat).
template <class P, class T, class Qa, class Qb>
constexpr quantized<T, P> multiply(quantized<T, Qa> a, quantized<T, Qb> b)
{
    if constexpr (detail::fixed_parts<P>::value)
        return mac(a, b, quantized<T, P>::from_raw(T(0)));
    else
        return quantized<T, P>::with_ops([&](auto const& o) { return o.mul(a.raw(), b.raw()); });
}

// c + p rounded once into c's format.
template <class T, class Qp, class Acc>
constexpr quantized<T, Acc> accumulate(quantized<T, Qp> p, quantized<T, Acc> c)
{
    static_assert(detail::minifloat_parts<Acc>::value || detail::fixed_parts<Qp>::value,
                  "a fixed-point accumulator adds fixed-point products");
    return mac(p, quantized<T, fixed_point<2, 0>>::from_raw(T(1)), c);
}

// A step of a datapath_of that does not round.
struct exact_step
{
};

// The formats of a multiply-accumulate datapath as types: operands In and Weights,
// products Product (exact_step: exact), accumulator Acc, output Out (exact_step: the
// accumulator's values). For output j: s = 0, s = Acc(s + Product(a_k w_k)) for k in
// increasing order, then Out(Acc(s + b)) with b in Acc's format. step draws stochastic
// thresholds from the thread's stochastic_scope, step_at at given positions.
template <class In, class Weights, class Product, class Acc, class Out = Acc>
struct datapath_of
{
    using input_format = In;
    using weights_format = Weights;
    using product_format = Product;
    using accumulator_format = Acc;
    using output_format = Out;

    template <class T>
    using accumulator = quantized<T, Acc>;
    template <class T>
    using output = std::conditional_t<std::is_same_v<Out, exact_step>, quantized<T, Acc>, quantized<T, Out>>;

    template <class T>
    static constexpr quantized<T, Acc> step(quantized<T, Acc> s, quantized<T, In> a, quantized<T, Weights> w)
    {
        if constexpr (std::is_same_v<Product, exact_step>)
            return mac(a, w, s);
        else
            return accumulate(multiply<Product>(a, w), s);
    }
    // step() with its stochastic thresholds taken at fixed positions of key's streams: the
    // product's rounding (or, with an exact product, the accumulator's) at product_at, the
    // accumulator's after a product format at accumulator_at. Deterministic formats draw none.
    template <class T>
    static quantized<T, Acc> step_at(quantized<T, Acc> s, quantized<T, In> a, quantized<T, Weights> w, rng_key key,
                                     std::uint64_t product_at, std::uint64_t accumulator_at)
    {
        if constexpr (std::is_same_v<Product, exact_step>) {
            stochastic_scope at(key, product_at);
            return mac(a, w, s);
        } else {
            const auto p = [&] {
                stochastic_scope at(key, product_at);
                return multiply<Product>(a, w);
            }();
            stochastic_scope at(key, accumulator_at);
            return accumulate(p, s);
        }
    }
    template <class T>
    static constexpr output<T> finish(quantized<T, Acc> s)
    {
        if constexpr (std::is_same_v<Out, exact_step>)
            return s;
        else
            return output<T>(s.value());
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI

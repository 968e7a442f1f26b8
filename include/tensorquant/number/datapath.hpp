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
#pragma once

#include "../config.hpp"

#include "quantized.hpp"

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
    const detail::int256 wc(codec::word(c.raw(), fc));
    constexpr int shift = fc - fa - fb; // the product in units of 2^-Fc is p 2^shift
    constexpr detail::fixed_arith<typename Acc::rounding_policy, typename Acc::overflow_policy> ar{Acc::format};
    detail::int128 word;
    if constexpr (shift >= 0) {
        word = ar.fit((p << shift) + wc);
    } else {
        std::uint64_t j = 0;
        if constexpr (is_stochastic_rounding_v<typename Acc::rounding_policy>)
            j = detail::threshold_bits(
                detail::next_threshold<std::conditional_t<std::is_floating_point_v<T>, T, double>, true>());
        word = ar.fit(
            detail::round_quotient<typename Acc::rounding_policy>(p + (wc << -shift), detail::int256(1) << -shift, j));
    }
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

} // namespace tensorquant::inline TENSORQUANT_ABI

// Exact arithmetic on fixed-point words: every operation computes its exact result in
// integers and rounds it once (paper eq. 7). Shared by quantized<T, fixed_point<...>>
// (format known at compile time) and the runtime-format number type, so both give the
// same bits.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../core/overflow.hpp"
#include "../core/rounding.hpp"
#include "../quantizers/fixed_point.hpp"

#include "stochastic_scope.hpp"
#include "wide_int.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

using bigint = int256; // exact beyond __int128

// How an exact remainder compares with half a step: 0, below, exactly half, above.
enum class remainder_class { zero, below_half, half, above_half };

// Applies policy R to the integer q_mag (the truncated magnitude) of a value with sign
// neg and remainder class c. R itself decides, on a small proxy with the same sign and
// parity, so the integer path follows the very policies the float kernels use.
template <class R, class I>
constexpr I round_truncated(bool neg, I q_mag, remainder_class c)
{
    constexpr double proxy_e[] = {0.0, 0.25, 0.5, 0.75};
    double t = static_cast<double>(static_cast<int>(static_cast<int128>(q_mag & I(3))));
    double e = proxy_e[static_cast<int>(c)];
    if (neg) t = -t, e = -e;
    const auto delta = static_cast<int>(R::apply(t, e) - t); // -1, 0 or +1
    return (neg ? -q_mag : q_mag) + I(delta);
}

template <class I>
constexpr remainder_class classify(I rem, I den) // 0 <= rem < den
{
    if (rem == 0) return remainder_class::zero;
    const I rest = den - rem;
    return rem < rest ? remainder_class::below_half : rem == rest ? remainder_class::half : remainder_class::above_half;
}

// The integer nearest (by R) to num / den, den > 0. A stochastic R moves the magnitude
// away from zero when the exact fraction rem / den exceeds the threshold j / 2^32.
template <class R, class I>
constexpr I round_quotient(I const& num, I const& den, [[maybe_unused]] std::uint64_t j = 0)
{
    const bool neg = num < 0;
    const I mag = neg ? I(-num) : num;
    const I q = mag / den;
    const I rem = mag - q * den;
    if constexpr (is_stochastic_rounding_v<R>) {
        const bool up = !(rem == I(0)) && (bigint(rem) << 32) > bigint(std::int64_t(j)) * bigint(den);
        const I m = up ? I(q + I(1)) : q;
        return neg ? I(-m) : m;
    } else {
        return round_truncated<R>(neg, q, classify<I>(rem, den));
    }
}

constexpr int bit_length(uint128 v) noexcept
{
    const auto hi = static_cast<std::uint64_t>(v >> 64);
    return hi ? 128 - std::countl_zero(hi) : 64 - std::countl_zero(static_cast<std::uint64_t>(v));
}
constexpr uint128 magnitude(int128 v) noexcept { return v < 0 ? uint128(0) - uint128(v) : uint128(v); }

// num / 2^s rounded by R (0 <= s < 127): round_quotient for a power-of-two denominator,
// with shifts instead of a 128-bit division (products and fma are this case).
template <class R>
constexpr int128 round_shift(int128 num, int s, [[maybe_unused]] std::uint64_t j = 0)
{
    if (s == 0) return num;
    const bool neg = num < 0;
    const uint128 mag = magnitude(num);
    const uint128 q = mag >> s, rem = mag & ((uint128(1) << s) - 1);
    if constexpr (is_stochastic_rounding_v<R>) {
        // rem / 2^s > j / 2^32
        const bool up = rem != 0 && (s <= 32 ? (rem << (32 - s)) > j : rem > (uint128(j) << (s - 32)));
        const int128 m = int128(q) + (up ? 1 : 0);
        return neg ? -m : m;
    } else {
        const uint128 half = uint128(1) << (s - 1);
        const remainder_class c = rem == 0      ? remainder_class::zero
                                  : rem < half  ? remainder_class::below_half
                                  : rem == half ? remainder_class::half
                                                : remainder_class::above_half;
        return round_truncated<R>(neg, int128(q), c);
    }
}

// Exact operations on words of a format with rounding R and overflow O. A word is the
// integer n of a value n 2^-F. j is the threshold of a stochastic R as j / 2^32 (unused
// otherwise).
template <class R, class O>
struct fixed_arith
{
    using rounding = R;
    fixed_format format;

    // f must be a valid format (fixed_point<> checks it at compile time, checked() at run time).
    constexpr explicit fixed_arith(fixed_format f) noexcept : format(f) {}
    static fixed_arith checked(fixed_format f)
    {
        check_fixed_format(f);
        return fixed_arith(f);
    }

    // The word of an exact integer result n (any size), after the overflow policy; a
    // result beyond the range is reported to this thread's range_watch.
    template <class N>
    constexpr int128 fit(N const& n) const
    {
        const int128 word = fit_word<O>(n, format);
        if (range_flag* watch = current_range_flag()) [[unlikely]]
            if (N(word) != n) watch->note(); // clamped or wrapped
        return word;
    }

    constexpr int128 add(int128 a, int128 b) const noexcept { return fit(a + b); }
    constexpr int128 sub(int128 a, int128 b) const noexcept { return fit(a - b); }
    constexpr int128 neg(int128 a) const noexcept { return fit(-a); }

    // a 2^-F * b 2^-F = (a b 2^-F) 2^-F.
    constexpr int128 mul(int128 a, int128 b, std::uint64_t j = 0) const
    {
        const int128 p = a * b; // |a|, |b| <= 2^63: fits
        const int f = format.frac;
        if (f >= 0 && f < 127) return fit(round_shift<R>(p, f, j));
        if (f >= 0) return fit(round_quotient<R>(bigint(p), bigint(1) << f, j));
        // coarse steps (F < 0): the exact word is p 2^|F|, possibly beyond 128 bits
        if (bit_length(magnitude(p)) - f < 126) return fit(p << -f);
        return fit(bigint(p) << -f);
    }

    // a b + c with one rounding: (a b + c 2^F) 2^-2F in steps of 2^-F.
    constexpr int128 fma(int128 a, int128 b, int128 c, std::uint64_t j = 0) const
    {
        const int f = format.frac;
        const int128 p = a * b;
        if (f < 0) return fit((bigint(p) << -f) + bigint(c)); // exact: coarse steps
        if (bit_length(magnitude(p)) < 125 && bit_length(magnitude(c)) + f < 125)
            return fit(round_shift<R>(int128(p + (c << f)), f, j));
        return fit(round_quotient<R>(bigint(p) + (bigint(c) << f), bigint(1) << f, j));
    }

    // (a 2^-F) / (b 2^-F) = (a 2^F / b) 2^-F; b != 0.
    constexpr int128 div(int128 a, int128 b, std::uint64_t j = 0) const
    {
        const int f = format.frac;
        bigint num(a), den(b);
        if (f >= 0)
            num = num << f;
        else
            den = den << -f;
        if (den < 0) num = -num, den = -den;
        if (bit_length(magnitude(a)) + (f > 0 ? f : 0) < 126 && bit_length(magnitude(b)) + (f < 0 ? -f : 0) < 126)
            return fit(round_quotient<R>(static_cast<int128>(num), static_cast<int128>(den), j));
        return fit(round_quotient<R>(num, den, j));
    }

    // 1 / (b 2^-F) = (2^2F / b) 2^-F, rounded once (1 itself need not be in the format); b != 0.
    constexpr int128 reciprocal(int128 b, std::uint64_t j = 0) const
    {
        const int f = format.frac;
        bigint num(1), den(b);
        if (f >= 0)
            num = num << (2 * f);
        else
            den = den << (-2 * f);
        if (den < 0) num = -num, den = -den;
        return fit(round_quotient<R>(num, den, j));
    }

    // The word of the integer i (exact, then the overflow policy).
    constexpr int128 from_integer(int128 i, std::uint64_t j = 0) const
    {
        const int f = format.frac;
        if (f < 0) return fit(round_quotient<R>(i, int128(1) << -f, j));
        if (bit_length(magnitude(i)) + f < 126) return fit(i << f);
        return fit(bigint(i) << f);
    }

    // (a 2^-F) / n for a positive integer n (an average over n elements).
    constexpr int128 div_int(int128 a, std::int64_t n, std::uint64_t j = 0) const
    {
        return fit(round_quotient<R>(a, int128(n), j));
    }

    // sqrt(a 2^-F) = sqrt(N / D) in steps of 2^-F, with N / D = a 2^F; a >= 0.
    constexpr int128 sqrt(int128 a, [[maybe_unused]] std::uint64_t j = 0) const
    {
        const int f = format.frac;
        const bigint n = f >= 0 ? bigint(a) << f : bigint(a);
        const bigint d = f >= 0 ? bigint(1) : bigint(1) << -f;
        // k = floor(sqrt(N/D)) = floor(isqrt(N D) / D); then compare N/D with (k + 1/2)^2
        const bigint nd = n * d;
        const bigint k = isqrt(nd) / d;
        const bigint dk = d * k;
        if constexpr (is_stochastic_rounding_v<R>) {
            // up when sqrt(N/D) > k + j 2^-32, i.e. N 2^64 > D (k 2^32 + j)^2
            const bigint t = (k << 32) + bigint(std::int64_t(j));
            const bool up = !(nd == dk * dk) && (n << 64) > d * t * t;
            return fit(up ? bigint(k + bigint(1)) : k);
        } else {
            remainder_class c;
            if (nd == dk * dk)
                c = remainder_class::zero;
            else {
                const bigint lhs = 4 * nd, mid = (2 * dk + d) * (2 * dk + d);
                c = lhs < mid    ? remainder_class::below_half
                    : lhs == mid ? remainder_class::half
                                 : remainder_class::above_half;
            }
            return fit(round_truncated<R>(false, k, c));
        }
    }
};

// Word of a value already in the format (exact: the value is n 2^-F with |n| < 2^64).
// (Scaling by an exact power of two is exact here: words are below 2^64 and |F| <= 64.)
// (A multiplication by a normal power of two is as exact as ldexp and much cheaper.)
template <std::floating_point T>
constexpr int128 to_word(T v, int frac) noexcept
{
    if (std::is_constant_evaluated() || (frac >= -126 && frac <= 126)) return static_cast<int128>(v * exp2i<T>(frac));
    return static_cast<int128>(std::ldexp(v, frac));
}
template <std::floating_point T>
constexpr T from_word(int128 n, int frac) noexcept
{
    if (std::is_constant_evaluated() || (frac >= -126 && frac <= 126)) return static_cast<T>(n) * exp2i<T>(-frac);
    return std::ldexp(static_cast<T>(n), -frac); // exact while the format fits T
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail

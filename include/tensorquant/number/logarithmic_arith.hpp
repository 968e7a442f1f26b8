// Exact arithmetic on logarithmic values (0 and +-2^k, k in [e_min, e_max]): the result
// of each operation is found from the exponents alone and rounded once by the format's
// rule (floor or nearest of log2 |x|, then flush below e_min and saturate above e_max).
// Products and quotients of powers of two are exact; sums, square roots and integer
// quotients are rounded from their exact value:
//   2^a + 2^b (a > b): floor a; nearest a + 1 when b = a - 1 (1.5 >= sqrt 2), else a
//   2^a - 2^b (a > b): floor a - 1; nearest a - 1 when b = a - 1 (exactly 2^(a-1)), else a
//   sqrt(2^a), a odd: 2^((a-1)/2) sqrt 2, which floor takes down and nearest up (it
//   reaches the threshold 2^k sqrt 2 exactly)
// Used by quantized<T, logarithmic_of<...>>.
#pragma once

#include "../config.hpp"

#include "../quantizers/logarithmic.hpp"
#include "fixed_arith.hpp"

#include <bit>
#include <cstdint>
#include <limits>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

template <std::floating_point T>
struct logarithmic_arith
{
    log_rounding rounding;
    int e_min;
    int e_max;

    // sign 2^k for an exact exponent k (any size): flush or saturate.
    constexpr T power(bool negative, long long k) const noexcept
    {
        T y = k < e_min ? T(0) : exp2i<T>(k > e_max ? e_max : int(k));
        return negative ? -y : y;
    }
    // The exponent of a nonzero value of the format.
    static constexpr int exponent(T x) noexcept
    {
        using U = uint_for<T>;
        constexpr int mb = std::numeric_limits<T>::digits - 1;
        constexpr int bias = std::numeric_limits<T>::max_exponent - 1;
        return int((std::bit_cast<U>(x) >> mb) & ((U(1) << (int(sizeof(T)) * 8 - 1 - mb)) - 1)) - bias;
    }
    static constexpr bool negative(T x) noexcept { return std::bit_cast<int_for<T>>(x) < 0; }
    static constexpr bool finite(T x) noexcept
    {
        return x == x && x != std::numeric_limits<T>::infinity() && x != -std::numeric_limits<T>::infinity();
    }
    // inf or NaN by IEEE 754 in T, then the format's rule (inf saturates).
    constexpr T special(T x) const noexcept
    {
        if (x != x) return x;
        return power(negative(x), e_max);
    }

    // sign 2^a + sign_b 2^b exactly, rounded (a, b exact exponents).
    constexpr T sum(bool na, long long a, bool nb, long long b) const noexcept
    {
        if (a < b) return sum(nb, b, na, a);
        const bool nearest = rounding == log_rounding::nearest;
        if (na == nb) {
            if (a == b) return power(na, a + 1);
            return power(na, nearest && b == a - 1 ? a + 1 : a);
        }
        if (a == b) return T(0); // x - x = +0
        if (b == a - 1) return power(na, a - 1);
        return power(na, nearest ? a : a - 1);
    }

    constexpr T add(T x, T y) const noexcept
    {
        if (!finite(x) || !finite(y)) return special(x + y);
        if (x == 0 || y == 0) return x == 0 ? (y == 0 ? x + y : y) : x; // IEEE signed zeros
        return sum(negative(x), exponent(x), negative(y), exponent(y));
    }
    constexpr T mul(T x, T y) const noexcept
    {
        if (!finite(x) || !finite(y)) return special(x * y);
        if (x == 0 || y == 0) return x * y;
        return power(negative(x) != negative(y), (long long)exponent(x) + exponent(y));
    }
    constexpr T div(T x, T y) const noexcept
    {
        if (!finite(x) || !finite(y) || y == 0) return special(x / y);
        if (x == 0) return x / y;
        return power(negative(x) != negative(y), (long long)exponent(x) - exponent(y));
    }
    constexpr T sqrt(T x) const noexcept
    {
        if (x != x || x == 0) return x; // sqrt(-0) = -0
        if (x < 0) return std::numeric_limits<T>::quiet_NaN();
        if (!finite(x)) return special(x);
        const int a = exponent(x);
        if (a % 2 == 0) return power(false, a / 2);
        const int down = (a - 1) / 2; // exact: a - 1 is even
        return power(false, rounding == log_rounding::nearest ? down + 1 : down);
    }
    constexpr T fma(T x, T y, T z) const noexcept
    {
        if (!finite(x) || !finite(y)) return special(x * y + z);
        if (!finite(z)) return special(z);
        if (x == 0 || y == 0) return z == 0 ? x * y + z : z; // the product is an exact +-0
        const bool np = negative(x) != negative(y);
        const long long p = (long long)exponent(x) + exponent(y); // exact, before any flush
        if (z == 0) return power(np, p);
        return sum(np, p, negative(z), exponent(z));
    }
    // |v| 2^-a rounded for a positive integer magnitude v: the exponent of v's rounding.
    constexpr long long integer_exponent(uint128 v) const noexcept
    {
        const int l = bit_length(v) - 1; // 2^l <= v < 2^(l+1)
        if (rounding == log_rounding::floor || (v & (v - 1)) == 0) return l;
        // v >= 2^l sqrt 2  <=>  v^2 >= 2^(2l + 1)
        const int256 sq = int256(int128(v)) * int256(int128(v));
        return sq >= (int256(1) << (2 * l + 1)) ? l + 1 : l;
    }
    constexpr T div_int(T x, std::int64_t n) const noexcept
    {
        if (!finite(x) || x == 0) return x;
        const auto d = static_cast<uint128>(n);
        const int l = bit_length(d) - 1;
        const long long a = exponent(x);
        if ((d & (d - 1)) == 0) return power(negative(x), a - l);
        // 2^a / n lies in (2^(a-l-1), 2^(a-l)); nearest: up when 2^(2l+1) >= n^2
        const bool up =
            rounding == log_rounding::nearest && (int256(1) << (2 * l + 1)) >= int256(int128(d)) * int256(int128(d));
        return power(negative(x), up ? a - l : a - l - 1);
    }
    constexpr T from_integer(int128 i) const noexcept
    {
        if (i == 0) return T(0);
        return power(i < 0, integer_exponent(magnitude(i)));
    }
};

// The operations the number type calls (number_operators).
template <std::floating_point T>
struct logarithmic_ops
{
    logarithmic_arith<T> const& ar;
    constexpr T add(T a, T b) const noexcept { return ar.add(a, b); }
    constexpr T sub(T a, T b) const noexcept { return ar.add(a, -b); }
    constexpr T mul(T a, T b) const noexcept { return ar.mul(a, b); }
    constexpr T div(T a, T b) const noexcept { return ar.div(a, b); }
    constexpr T sqrt(T a) const noexcept { return ar.sqrt(a); }
    constexpr T fma(T a, T b, T c) const noexcept { return ar.fma(a, b, c); }
    constexpr T div_int(T a, std::int64_t n) const noexcept { return ar.div_int(a, n); }
    constexpr T neg(T a) const noexcept { return -a; }
    template <std::integral I>
    constexpr T from_integer(I i) const noexcept
    {
        return ar.from_integer(static_cast<int128>(i));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::detail

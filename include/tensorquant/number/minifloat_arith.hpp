// Exact arithmetic on minifloat values: every operation computes its exact result in
// integers (a significand of up to 122 bits and a sticky bit for what lies below) and
// rounds it once to the format, as an IEEE 754 unit with the format's exponent range
// would. Used by quantized<T, minifloat_of<...>>.
//
// Values are held in a float or double T that represents every value of the format
// exactly (minifloat_fits<T>). Results that are not finite numbers follow IEEE 754 in T
// and then the format's own rule (minifloat_overflow): inf - inf, 0 * inf, 0 / 0 and
// sqrt(-1) give NaN, x / 0 gives +-inf, which a finite-only format turns into NaN and a
// saturating one into +-max.
#pragma once

#include "../config.hpp"

#include "../quantizers/minifloat.hpp"
#include "fixed_arith.hpp"
#include "stochastic_scope.hpp"

#include <bit>
#include <cstdint>
#include <limits>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

// |v| = (sig + d) 2^exp with d = 0 when !sticky, 0 < d < 1 when sticky. Producers keep at
// least M + 1 + guard_bits significant bits in sig whenever sticky is set, so the sticky
// part lies below every bit the rounding looks at: the half-step bit, or the 32 bits
// a stochastic threshold is compared with.
struct exact_float
{
    uint128 sig = 0;
    int exp = 0;
    bool negative = false;
    bool sticky = false;
};

// frac > u for frac = (rem + d) / 2^s (d as in exact_float) and u = j / 2^32: the
// threshold test of stochastic rounding, done exactly. The generator's thresholds are
// multiples of 2^-24 (float) or 2^-32 (double), so 32 bits of frac decide.
constexpr bool fraction_above(uint128 rem, int s, bool sticky, std::uint64_t j) noexcept
{
    if (s <= 32) {
        const uint128 r = rem << (32 - s);
        return r > j || (r == j && sticky);
    }
    const int sh = s - 32;
    const uint128 hi = sh >= 128 ? 0 : rem >> sh;
    const bool below = (sh >= 128 ? rem : rem & ((uint128(1) << sh) - 1)) != 0 || sticky;
    return hi > j || (hi == j && below);
}

template <std::floating_point T, class R>
struct minifloat_arith
{
    using U = uint_for<T>;
    static constexpr int t_digits = std::numeric_limits<T>::digits;
    static constexpr int t_bias = std::numeric_limits<T>::max_exponent - 1;
    static constexpr bool stochastic = is_stochastic_rounding_v<R>;
    static constexpr int guard_bits = stochastic ? 35 : 3;

    minifloat_format format;
    T max_finite;
    T overflow_value;

    constexpr minifloat_arith(minifloat_format f, minifloat_overflow o) noexcept
        : format(f), max_finite(minifloat_max<T>(f)), overflow_value(minifloat_overflow_value<T>(f, o))
    {}

    // A finite T as sig 2^exp (sig < 2^digits).
    static constexpr exact_float decode(T x) noexcept
    {
        const U b = std::bit_cast<U>(x);
        constexpr int mb = t_digits - 1;
        constexpr int bits = int(sizeof(T)) * 8;
        const int biased = int((b >> mb) & ((U(1) << (bits - 1 - mb)) - 1));
        U m = b & ((U(1) << mb) - 1);
        int e = 1 - t_bias - mb; // T subnormal
        if (biased != 0) m |= U(1) << mb, e = biased - t_bias - mb;
        const int tz = m == 0 ? 0 : std::countr_zero(m); // keep sig as short as the value
        return {uint128(m >> tz), e + tz, (b >> (bits - 1)) != 0, false};
    }

    // t 2^q as a T (exact: the caller knows it is a value of the format or 2^(e_max + 2)).
    static constexpr T scale(uint128 t, int q) noexcept
    {
        const T m = static_cast<T>(static_cast<std::uint64_t>(t));
        if (q < std::numeric_limits<T>::min_exponent) return m * exp2i<T>(q + 64) * exp2i<T>(-64);
        return m * exp2i<T>(q);
    }

    // v rounded once to the format by R (u: the stochastic threshold).
    constexpr T round(exact_float v, [[maybe_unused]] T u) const noexcept
    {
        const int M = format.mantissa_bits;
        const int e_min = format.min_exponent(), e_cap = format.max_exponent() + 1;
        const int lead = v.exp + bit_length(v.sig) - 1; // v.sig != 0
        if (lead >= e_cap) return v.negative ? -overflow_value : overflow_value;
        const int q = (lead > e_min ? lead : e_min) - M; // the step at v's exponent
        const int s = q - v.exp;                         // remainder bits (>= 2 when sticky)
        uint128 t, rem;
        if (s <= 0) {
            t = v.sig << -s;
            rem = 0;
        } else if (s >= 128) {
            t = 0;
            rem = v.sig;
        } else {
            t = v.sig >> s;
            rem = v.sig & ((uint128(1) << s) - 1);
        }
        bool up;
        if constexpr (stochastic) {
            up = (rem != 0 || v.sticky) && fraction_above(rem, s, v.sticky, threshold_bits(u));
        } else {
            remainder_class c = remainder_class::zero;
            if (rem != 0 || v.sticky) {
                if (s >= 128) {
                    c = remainder_class::below_half; // |rem| < 2^122 <= half
                } else {
                    const uint128 half = uint128(1) << (s - 1); // s >= 1 here
                    const bool rest = (rem & (half - 1)) != 0 || v.sticky;
                    c = rem < half             ? remainder_class::below_half
                        : rem == half && !rest ? remainder_class::half
                                               : remainder_class::above_half;
                }
            }
            up = round_truncated<R>(false, int128(t & 3), c) != int128(t & 3);
        }
        if (up) ++t;
        T y = scale(t, q);
        if (y > max_finite) return v.negative ? -overflow_value : overflow_value;
        if (!format.subnormals && y < exp2i<T>(e_min)) y = T(0);
        return v.negative ? -y : y;
    }

    // x + y exactly for nonzero x, y with at most 106 significant bits.
    static constexpr exact_float exact_sum(exact_float x, exact_float y) noexcept
    {
        const int lx = x.exp + bit_length(x.sig) - 1, ly = y.exp + bit_length(y.sig) - 1;
        const int z = (lx > ly ? lx : ly) - 120; // 121 bits of the larger; the smaller may lose bits
        auto align = [z](exact_float& v) {
            if (v.exp >= z) {
                v.sig <<= v.exp - z;
            } else {
                const int sh = z - v.exp;
                v.sticky = sh >= 128 ? v.sig != 0 : (v.sig & ((uint128(1) << sh) - 1)) != 0;
                v.sig = sh >= 128 ? 0 : v.sig >> sh;
            }
            v.exp = z;
        };
        align(x);
        align(y);
        exact_float r{0, z, false, x.sticky || y.sticky};
        if (x.negative == y.negative) {
            r.sig = x.sig + y.sig;
            r.negative = x.negative;
            return r;
        }
        // only the smaller one can be inexact (the larger keeps all its bits)
        const bool x_larger = x.sig >= y.sig;
        exact_float const& larger = x_larger ? x : y;
        exact_float const& smaller = x_larger ? y : x;
        r.negative = larger.negative;
        r.sig = larger.sig - smaller.sig - (smaller.sticky ? 1 : 0);
        return r;
    }

    // n / d (d > 0) as sig 2^exp with at least M + 1 + guard_bits bits and a sticky remainder.
    constexpr exact_float quotient(uint128 n, uint128 d) const noexcept
    {
        int sh = bit_length(d) - bit_length(n) + format.mantissa_bits + 2 + guard_bits;
        if (sh < 0) sh = 0;
        if (bit_length(n) + sh < 128) {
            const uint128 num = n << sh;
            const uint128 q = num / d;
            return {q, -sh, false, num - q * d != 0};
        }
        const int256 num = int256(int128(n)) << sh, den = int256(int128(d));
        const int256 q = num / den;
        return {uint128(int128(q)), -sh, false, q * den != num};
    }

    // Operands are values of the format held in T.
    constexpr T add(T a, T b, T u) const noexcept
    {
        if (!finite(a) || !finite(b)) return special(a + b);
        if (a == 0 || b == 0) return a == 0 ? (b == 0 ? a + b : b) : a; // IEEE signed zeros
        const exact_float r = exact_sum(decode(a), decode(b));
        if (r.sig == 0) return T(0); // x - x = +0
        return round(r, u);
    }
    constexpr T mul(T a, T b, T u) const noexcept
    {
        if (!finite(a) || !finite(b)) return special(a * b);
        if (a == 0 || b == 0) return a * b; // +-0, exact
        const exact_float x = decode(a), y = decode(b);
        return round({x.sig * y.sig, x.exp + y.exp, x.negative != y.negative, false}, u);
    }
    constexpr T div(T a, T b, T u) const noexcept
    {
        if (!finite(a) || !finite(b) || b == 0) return special(a / b);
        if (a == 0) return a / b;
        const exact_float x = decode(a), y = decode(b);
        exact_float q = quotient(x.sig, y.sig);
        q.exp += x.exp - y.exp;
        q.negative = x.negative != y.negative;
        return round(q, u);
    }
    constexpr T sqrt(T a, T u) const noexcept
    {
        if (a != a || a == 0 || a == std::numeric_limits<T>::infinity()) return a; // sqrt(-0) = -0
        if (a < 0) return std::numeric_limits<T>::quiet_NaN();
        exact_float x = decode(a);
        if (x.exp & 1) x.sig <<= 1, --x.exp; // even exponent
        // at least 2 (M + 1 + guard) bits under the root: M + 1 + guard bits in it
        int sh = 2 * (format.mantissa_bits + 1 + guard_bits) - bit_length(x.sig) + 1;
        sh = sh < 0 ? 0 : sh + (sh & 1);
        const int256 n = int256(int128(x.sig)) << sh;
        const int256 r = isqrt(n);
        return round({uint128(int128(r)), (x.exp - sh) / 2, false, r * r != n}, u);
    }
    // a b + c with one rounding.
    constexpr T fma(T a, T b, T c, T u) const noexcept
    {
        if (!finite(a) || !finite(b)) return special(a * b + c);
        if (!finite(c)) return special(c);
        if (a == 0 || b == 0) return c == 0 ? a * b + c : c; // the product is an exact +-0
        const exact_float x = decode(a), y = decode(b);
        const exact_float p{x.sig * y.sig, x.exp + y.exp, x.negative != y.negative, false};
        if (c == 0) return round(p, u);
        const exact_float r = exact_sum(p, decode(c));
        if (r.sig == 0 && !r.sticky) return T(0);
        return round(r, u);
    }
    // a / n for an exact positive integer n.
    constexpr T div_int(T a, std::int64_t n, T u) const noexcept
    {
        if (!finite(a) || a == 0) return a;
        const exact_float x = decode(a);
        exact_float q = quotient(x.sig, static_cast<uint128>(n));
        q.exp += x.exp;
        q.negative = x.negative;
        return round(q, u);
    }
    // The integer i, exact, rounded once.
    constexpr T from_integer(int128 i, T u) const noexcept
    {
        if (i == 0) return T(0);
        return round({magnitude(i), 0, i < 0, false}, u);
    }

private:
    static constexpr bool finite(T x) noexcept
    {
        return x == x && x != std::numeric_limits<T>::infinity() && x != -std::numeric_limits<T>::infinity();
    }
    // inf or NaN by IEEE 754 in T, then the format's rule for them.
    constexpr T special(T x) const noexcept
    {
        if (x != x) return x;
        if (x == std::numeric_limits<T>::infinity()) return overflow_value;
        if (x == -std::numeric_limits<T>::infinity()) return -overflow_value;
        return x;
    }
};

// The operations the number type calls (number_operators), with the thresholds of a
// stochastic R drawn from the thread's stochastic_scope, one per operation.
template <std::floating_point T, class R>
struct minifloat_ops
{
    minifloat_arith<T, R> const& ar;

    static constexpr T u() { return next_threshold<T, is_stochastic_rounding_v<R>>(); }
    constexpr T add(T a, T b) const { return ar.add(a, b, u()); }
    constexpr T sub(T a, T b) const { return ar.add(a, -b, u()); }
    constexpr T mul(T a, T b) const { return ar.mul(a, b, u()); }
    constexpr T div(T a, T b) const { return ar.div(a, b, u()); }
    constexpr T sqrt(T a) const { return ar.sqrt(a, u()); }
    constexpr T fma(T a, T b, T c) const { return ar.fma(a, b, c, u()); }
    constexpr T div_int(T a, std::int64_t n) const { return ar.div_int(a, n, u()); }
    constexpr T neg(T a) const noexcept { return -a; } // the grid is symmetric
    template <std::integral I>
    constexpr T from_integer(I i) const
    {
        return ar.from_integer(static_cast<int128>(i), u());
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::detail

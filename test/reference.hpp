// Exact references for the tests, written independently of the kernels: values are
// turned into exact rationals m 2^e with Boost.Multiprecision integers, rounded in the
// floor/remainder form of docs/reference.md §1.1, and compared exactly.
#pragma once

#include <tensorquant/tensorquant.hpp>

#include <boost/multiprecision/cpp_int.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

namespace tqtest {

using big = boost::multiprecision::cpp_int;
namespace tq = tensorquant;

// x = mant 2^exp with integer mant (x finite).
struct exact_value
{
    big mant;
    int exp;
};

template <class T>
exact_value exact(T x)
{
    int e = 0;
    T f = std::frexp(x, &e);
    constexpr int d = std::numeric_limits<T>::digits;
    auto m = static_cast<std::int64_t>(std::ldexp(f, d));
    return {big(m), e - d};
}

inline big pow2(int k) { return big(1) << k; }

// floor(v) and the remainder numerator, for v = mant 2^exp: v = fl + rem / den, den = 2^s.
struct split_value
{
    big fl;
    big rem; // in [0, den)
    big den;
};

inline split_value split(exact_value v)
{
    if (v.exp >= 0) return {v.mant << v.exp, 0, 1};
    const int s = -v.exp;
    big den = pow2(s);
    big fl = v.mant >= 0 ? big(v.mant >> s) : big(-((-v.mant + den - 1) >> s));
    return {fl, v.mant - fl * den, den};
}

// Rounds v (the exact value of x 2^F) to an integer as docs/reference.md §1.1 defines each mode.
// u is the stochastic threshold as the rational unum / 2^ubits.
inline big round_ref(tq::rounding_mode m, split_value const& v, bool negative, std::uint64_t unum = 0, int ubits = 24)
{
    const big two_rem = 2 * v.rem;
    const bool gt_half = two_rem > v.den, tie = two_rem == v.den, frac = v.rem != 0;
    const bool fl_even = (v.fl % 2) == 0;
    using R = tq::rounding_mode;
    switch (m) {
    case R::nearest:
        return v.fl + ((gt_half || (tie && !negative)) ? 1 : 0);
    case R::nearest_even:
        return v.fl + ((gt_half || (tie && !fl_even)) ? 1 : 0);
    case R::nearest_up:
        return v.fl + ((gt_half || tie) ? 1 : 0);
    case R::nearest_down:
        return v.fl + (gt_half ? 1 : 0);
    case R::nearest_zero:
        return v.fl + ((gt_half || (tie && negative)) ? 1 : 0);
    case R::zero:
        return v.fl + ((negative && frac) ? 1 : 0);
    case R::down:
        return v.fl;
    case R::up:
        return v.fl + (frac ? 1 : 0);
    case R::stochastic: {
        // on the magnitude: |v| = m + f, away from zero when f > u
        if (!negative) return v.fl + ((v.rem << ubits) > big(unum) * v.den ? 1 : 0);
        if (v.rem == 0) return v.fl;
        const big f = v.den - v.rem; // frac(|v|) = 1 - rem / den
        return (f << ubits) > big(unum) * v.den ? v.fl : v.fl + 1;
    }
    }
    return v.fl;
}

// Integer word after overflow handling.
inline big limit_ref(tq::overflow_mode o, tq::fixed_format f, big q)
{
    const big lo = f.is_signed ? big(-pow2(f.width - 1)) : big(0);
    const big hi = f.is_signed ? big(pow2(f.width - 1) - 1) : big(pow2(f.width) - 1);
    switch (o) {
    case tq::overflow_mode::saturate:
        return q < lo ? lo : (q > hi ? hi : q);
    case tq::overflow_mode::symmetric: {
        const big l = f.is_signed ? big(-hi) : lo;
        return q < l ? l : (q > hi ? hi : q);
    }
    case tq::overflow_mode::wrap: {
        const big mod = pow2(f.width);
        big r = q % mod;
        if (r < 0) r += mod;
        if (f.is_signed && r >= pow2(f.width - 1)) r -= mod;
        return r;
    }
    }
    return q;
}

// The fixed-point integer (value = result 2^-F) for finite x.
template <class T>
big fixed_ref(tq::fixed_format f, tq::rounding_mode r, tq::overflow_mode o, T x, std::uint64_t unum = 0)
{
    exact_value v = exact(x);
    v.exp += f.frac;
    const int ubits = sizeof(T) == 4 ? 24 : 32;
    return limit_ref(o, f, round_ref(r, split(v), x < 0, unum, ubits));
}

// True when y (finite) equals q 2^-F exactly.
template <class T>
bool equals_fixed(T y, big const& q, int frac)
{
    if (!std::isfinite(y)) return false;
    exact_value v = exact(y);
    v.exp += frac; // y 2^F
    if (v.exp >= 0) return (v.mant << v.exp) == q;
    const big den = pow2(-v.exp);
    return v.mant == q * den;
}

inline std::uint64_t word_of(big q, int width)
{
    big mod = pow2(width);
    big r = q % mod;
    if (r < 0) r += mod;
    return static_cast<std::uint64_t>(r);
}

// Stochastic threshold numerator the library draws for element i (u = unum 2^-ubits).
template <class T>
std::uint64_t threshold_numerator(tq::rng_key key, std::uint64_t i)
{
    T u = tq::detail::uniform_at<T>(key, i);
    return static_cast<std::uint64_t>(std::ldexp(u, sizeof(T) == 4 ? 24 : 32));
}

// The integer R(num / den) of the rounding (docs/reference.md §1.1), den > 0.
inline big round_rational(tq::rounding_mode m, big const& num, big const& den, std::uint64_t unum = 0, int ubits = 24)
{
    big fl = num / den; // truncates toward zero
    big rem = num - fl * den;
    if (rem < 0) fl -= 1, rem += den;
    return round_ref(m, split_value{fl, rem, den}, num < 0, unum, ubits);
}

// R(sqrt(num / den)), num >= 0: sqrt to 200 extra bits, truncated, stands for the exact
// value unless exact; a truncated one is replaced by the midpoint of its last-bit
// interval, which lies strictly inside the same rounding class.
inline big round_sqrt(tq::rounding_mode m, big const& num, big const& den, std::uint64_t unum = 0, int ubits = 24)
{
    const int p = 200;
    const big scaled = (num << (2 * p)) / den; // floor(num 4^p / den)
    const big s = boost::multiprecision::sqrt(scaled);
    const bool exact = s * s * den == (num << (2 * p));
    const big den2 = pow2(p + 1);
    const big numer = exact ? big(2 * s) : big(2 * s + 1);
    return round_rational(m, numer, den2, unum, ubits);
}

// Identical bits, or both NaN.
template <class T>
bool same_bits(T a, T b)
{
    return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

} // namespace tqtest

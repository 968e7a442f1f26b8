// Operations written once for a scalar T and for xsimd::batch<T, A>, so every kernel is
// one template and the SIMD and scalar paths cannot drift apart.
#pragma once

#include "../config.hpp"

#include "xsimd_compat.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

template <class V>
struct vector_traits
{
    using value_type = V;
    static constexpr std::size_t size = 1;
};

template <class T, class A>
struct vector_traits<xsimd::batch<T, A>>
{
    using value_type = T;
    static constexpr std::size_t size = xsimd::batch<T, A>::size;
};

template <class V>
using value_type_t = typename vector_traits<V>::value_type;

// Unsigned integer of the same width as the floating-point type T.
template <class T>
using uint_for = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
template <class T>
using int_for = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;

template <class V>
struct int_vector
{
    using type = int_for<V>;
};
template <class T, class A>
struct int_vector<xsimd::batch<T, A>>
{
    using type = xsimd::batch<int_for<T>, A>;
};
template <class V>
using int_vector_t = typename int_vector<V>::type;

// --- scalar overloads ---------------------------------------------------------------
// constexpr: in constant evaluation, where <cmath> is not constexpr, the floating-point
// helpers work on the bits and on integers (exact, as the library calls do).
template <class T>
    requires std::is_arithmetic_v<T>
constexpr T vselect(bool c, T a, T b) noexcept { return c ? a : b; }

template <class T>
    requires std::floating_point<T>
constexpr T vabs(T x) noexcept
{
    if (std::is_constant_evaluated()) {
        if constexpr (sizeof(T) == sizeof(std::uint32_t) || sizeof(T) == sizeof(std::uint64_t)) {
            using U = std::make_unsigned_t<int_for<T>>;
            return std::bit_cast<T>(U(std::bit_cast<U>(x) & (~U(0) >> 1)));
        }
    }
    return std::fabs(x);
}
template <class T>
    requires std::floating_point<T>
constexpr T vcopysign(T mag, T sgn) noexcept
{
    if (std::is_constant_evaluated()) {
        if constexpr (sizeof(T) == sizeof(std::uint32_t) || sizeof(T) == sizeof(std::uint64_t)) {
            using U = std::make_unsigned_t<int_for<T>>;
            constexpr U sign = U(1) << (8 * sizeof(T) - 1);
            return std::bit_cast<T>(U((std::bit_cast<U>(mag) & ~sign) | (std::bit_cast<U>(sgn) & sign)));
        }
    }
    return std::copysign(mag, sgn);
}
template <class T>
    requires std::floating_point<T>
constexpr T vtrunc(T x) noexcept
{
    if (std::is_constant_evaluated()) {
        // beyond 2^(digits - 1) every value is an integer (or infinite, or NaN)
        constexpr T integral = T(std::uint64_t(1) << (std::numeric_limits<T>::digits - 1));
        if (!(vabs(x) < integral)) return x;
        return vcopysign(T(static_cast<std::int64_t>(x)), x);
    }
    return std::trunc(x);
}
template <class T>
    requires std::floating_point<T>
constexpr T vfloor(T x) noexcept
{
    if (std::is_constant_evaluated()) {
        const T t = vtrunc(x);
        return t > x ? t - T(1) : t;
    }
    return std::floor(x);
}
template <class T>
    requires std::floating_point<T>
constexpr bool visnan(T x) noexcept { return x != x; }

template <class T>
    requires std::floating_point<T>
constexpr int_for<T> to_bits(T x) noexcept { return std::bit_cast<int_for<T>>(x); }
constexpr float from_bits(std::int32_t b) noexcept { return std::bit_cast<float>(b); }
constexpr double from_bits(std::int64_t b) noexcept { return std::bit_cast<double>(b); }

// --- batch overloads ----------------------------------------------------------------
template <class T, class A>
inline xsimd::batch<T, A> vselect(xsimd::batch_bool<T, A> const& c, xsimd::batch<T, A> const& a,
                                  xsimd::batch<T, A> const& b) noexcept
{
    return xsimd::select(c, a, b);
}
// xsimd's trunc and floor for double without SSE4.1 (and its generic fallback) convert
// lanes to int64 in C++, which is undefined for NaN and |x| >= 2^63: such lanes are
// replaced by 0 before the conversion and restored after it (they are integral or NaN
// already). (xsimd 8 derives avx and avx512f from generic, not from sse4_1: all three round
// natively.)
template <class T, class A, class Round>
inline xsimd::batch<T, A> round_guarded(xsimd::batch<T, A> const& x, Round round) noexcept
{
    constexpr bool native =
        std::is_base_of_v<xsimd::sse4_1, A> || std::is_base_of_v<xsimd::avx, A> || std::is_base_of_v<xsimd::avx512f, A>;
    if constexpr (std::is_same_v<T, double> && !native) {
        using B = xsimd::batch<T, A>;
        const auto small = xsimd::abs(x) < B(0x1p52); // false for NaN
        return xsimd::select(small, round(xsimd::select(small, x, B(0.0))), x);
    } else {
        return round(x);
    }
}
template <class T, class A>
inline xsimd::batch<T, A> vfloor(xsimd::batch<T, A> const& x) noexcept
{
    return round_guarded(x, [](auto const& v) { return xsimd::floor(v); });
}
template <class T, class A>
inline xsimd::batch<T, A> vtrunc(xsimd::batch<T, A> const& x) noexcept
{
    return round_guarded(x, [](auto const& v) { return xsimd::trunc(v); });
}
template <class T, class A>
inline xsimd::batch<T, A> vabs(xsimd::batch<T, A> const& x) noexcept
{
    return xsimd::abs(x);
}
template <class T, class A>
inline auto visnan(xsimd::batch<T, A> const& x) noexcept
{
    return xsimd::isnan(x);
} // xsimd 8: != is ordered
template <class T, class A>
inline xsimd::batch<T, A> vcopysign(xsimd::batch<T, A> const& m, xsimd::batch<T, A> const& s) noexcept
{
    return xsimd::copysign(m, s);
}
template <class T, class A>
inline xsimd::batch<int_for<T>, A> to_bits(xsimd::batch<T, A> const& x) noexcept
{
    return simd::bit_cast<int_for<T>>(x);
}
template <class I, class A>
    requires std::is_integral_v<I>
inline auto from_bits(xsimd::batch<I, A> const& b) noexcept
{
    using T = std::conditional_t<sizeof(I) == 4, float, double>;
    return simd::bit_cast<T>(b);
}

// a * b + c, for callers whose product and sum are exact (so fused or not is the same).
template <class T>
    requires std::floating_point<T>
constexpr T mul_add(T a, T b, T c) noexcept { return a * b + c; }
template <class T, class A>
inline xsimd::batch<T, A> mul_add(xsimd::batch<T, A> const& a, xsimd::batch<T, A> const& b,
                                  xsimd::batch<T, A> const& c) noexcept
{
    return xsimd::fma(a, b, c);
}

// Integer add that wraps like the SIMD lanes do (signed overflow is undefined in scalar C++).
template <class I>
    requires std::is_integral_v<I>
constexpr I wrapping_add(I a, I b) noexcept
{
    using U = std::make_unsigned_t<I>;
    return static_cast<I>(static_cast<U>(a) + static_cast<U>(b));
}
template <class I, class A>
inline xsimd::batch<I, A> wrapping_add(xsimd::batch<I, A> const& a, xsimd::batch<I, A> const& b) noexcept
{
    return a + b;
}

template <class V>
constexpr V half() noexcept
{
    return V(value_type_t<V>(0.5));
}

// 1 where the condition holds, 0 elsewhere; +0 so that adding it turns -0 into +0.
template <class V, class M>
constexpr V one_if(M const& m) noexcept
{
    return vselect(m, V(value_type_t<V>(1)), V(value_type_t<V>(0)));
}

// Exact 2^e for T (0 below the subnormals, +inf above the range, as repeated halving and
// doubling give). Kernels are made per operation by the number type, so the normal range
// is built from its exponent bits rather than by a loop.
template <class T>
constexpr T exp2i(int e) noexcept
{
    if constexpr (std::is_same_v<T, float> && std::numeric_limits<float>::is_iec559) {
        if (e >= -126 && e <= 127) return std::bit_cast<float>(std::uint32_t(e + 127) << 23);
    } else if constexpr (std::is_same_v<T, double> && std::numeric_limits<double>::is_iec559) {
        if (e >= -1022 && e <= 1023) return std::bit_cast<double>(std::uint64_t(e + 1023) << 52);
    }
    T r = 1;
    if (e >= 0)
        for (int i = 0; i < e && r != std::numeric_limits<T>::infinity(); ++i) r *= 2;
    else
        for (int i = 0; i < -e && r != 0; ++i) r /= 2;
    return r;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail

// quantized<T, Q>: a number stored as a T whose every arithmetic step is rounded as
// hardware would (paper eq. 7, intrinsic quantization). Generic code written for float
// runs on it unchanged.
//
// Semantics (docs/guide.md, "The number type"; docs/reference.md §3):
// - Q is a fixed_point<W, F, R, O, Signed>, a minifloat_of<Format, R, O> or a
//   logarithmic_of<R, EMin, EMax>. The storage T must hold every value exactly: for fixed
//   point float (W <= 24) or double (W <= 53) store the value, std::int64_t stores the
//   word (any W up to 64); for the others T is float or double. A user-defined element
//   quantizer works too: its operations are computed in the wider float type and then
//   quantized (number_traits says when that is one rounding and how to give a format
//   exact arithmetic of its own). Anything else is a compile error.
// - + - * / sqrt and fma compute the exact result in integers and round it once with R,
//   then apply the overflow policy. abs, min, max, unary minus and comparisons are exact
//   (their results are already in the format, up to the overflow policy for -lowest).
// - Stochastic R draws one threshold per rounding from the innermost stochastic_scope of
//   the calling thread (key, position), so a computation done in a fixed order gives the
//   same bits on any thread count.
// - Construction from a float or double, implicit or explicit, quantizes it with Q (in
//   the wider of the two types, so nothing is rounded twice). Mixed expressions such
//   as q * 0.5f therefore quantize the plain operand first, as a constant stored in the
//   hardware's format would be. Conversion back to T is explicit.
//   Integers convert exactly, whatever their size, before the overflow policy.
// - Fixed point: division by zero gives Q(+-inf) (the saturated bound; NaN under wrap),
//   0/0 and sqrt of a negative give NaN, and NaN propagates through every operation.
//   Integer storage has no NaN: those cases (and constructing from NaN) throw
//   arithmetic_error. Minifloat: IEEE 754 rules for inf, NaN and signed zeros, then the
//   format's overflow rule (a finite-only format has no inf: NaN, or max when saturating).
//
// quantized_rt<T> is the same number with the format chosen at run time: its operations
// use the format of the innermost number_scope on the calling thread, through the same
// integer code, so results are bit-identical to quantized<T, Q> with that format.
#pragma once

#include "../config.hpp"

#include "../core/concepts.hpp"
#include "../quantizers/fixed_point.hpp"
#include "../quantizers/logarithmic.hpp"
#include "../quantizers/minifloat.hpp"
#include "fixed_arith.hpp"
#include "logarithmic_arith.hpp"
#include "minifloat_arith.hpp"

#include <bit>
#include <cmath>
#include <compare>
#include <concepts>
#include <cstdint>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {

template <class A, class B>
using wider_t = std::conditional_t<(sizeof(A) >= sizeof(B)), A, B>;

// How a number type stores a value: a floating-point T holds the value itself, a 64-bit
// integer holds the word (value = word 2^-F), which serves formats up to 64 bits.
template <class T>
struct storage_codec
{
    static constexpr int128 word(T raw, int frac) noexcept { return to_word(raw, frac); }
    static constexpr T raw(int128 word, int frac) noexcept { return from_word<T>(word, frac); }
    static constexpr bool isnan(T raw) noexcept { return raw != raw; }
    static constexpr T nan(char const*) noexcept { return std::numeric_limits<T>::quiet_NaN(); }
};
template <>
struct storage_codec<std::int64_t>
{
    static constexpr int128 word(std::int64_t raw, int) noexcept { return raw; }
    static constexpr std::int64_t raw(int128 word, int) noexcept { return static_cast<std::int64_t>(word); }
    static constexpr bool isnan(std::int64_t) noexcept { return false; }
    [[noreturn]] static std::int64_t nan(char const* what)
    {
        throw arithmetic_error(std::string("quantized with integer storage: ") + what + " has no fixed-point result");
    }
};

// The operations of both number types on fixed point, on raw storage of values already in
// the format. A stochastic rounding draws one threshold from the thread's
// stochastic_scope per operation that can round: * / sqrt fma divide, conversions from
// float, and from integers when F < 0 (not + - and negation, which are exact before the
// overflow policy).
template <class T, class Arith, class Quantize>
struct exact_ops
{
    using codec = storage_codec<T>;
    static constexpr bool stochastic = is_stochastic_rounding_v<typename Arith::rounding>;
    Arith const& ar;
    Quantize const& quantize; // quantizes a plain value of T into the format (floating T)

    static constexpr std::uint64_t j()
    {
        using U = std::conditional_t<std::is_floating_point_v<T>, T, double>;
        if constexpr (stochastic)
            return threshold_bits(next_threshold<U, true>());
        else
            return 0;
    }
    constexpr int frac() const noexcept { return ar.format.frac; }
    template <class Op>
    constexpr T binary(T a, T b, Op op) const
    {
        if (codec::isnan(a) || codec::isnan(b)) return codec::nan("NaN");
        return codec::raw(op(codec::word(a, frac()), codec::word(b, frac())), frac());
    }
    template <class Op>
    constexpr T unary(T a, Op op) const
    {
        if (codec::isnan(a)) return a;
        return codec::raw(op(codec::word(a, frac())), frac());
    }

    constexpr T add(T a, T b) const
    {
        return binary(a, b, [&](auto x, auto y) { return ar.add(x, y); });
    }
    constexpr T sub(T a, T b) const
    {
        return binary(a, b, [&](auto x, auto y) { return ar.sub(x, y); });
    }
    constexpr T mul(T a, T b) const
    {
        return binary(a, b, [&](auto x, auto y) { return ar.mul(x, y, j()); });
    }
    constexpr T div(T a, T b) const
    {
        if (b == T(0)) {
            if constexpr (std::is_floating_point_v<T>)
                return quantize(a / b); // +-inf or NaN, then the format's rule
            else
                return codec::nan("division by zero");
        }
        return binary(a, b, [&](auto x, auto y) { return ar.div(x, y, j()); });
    }
    constexpr T sqrt(T a) const
    {
        if (codec::isnan(a)) return a;
        if (a < T(0)) return codec::nan("the square root of a negative number");
        return unary(a, [&](auto x) { return ar.sqrt(x, j()); });
    }
    constexpr T reciprocal(T a) const
    {
        if (codec::isnan(a)) return a;
        if (a == T(0)) return div(T(1), a); // +-inf by the format's rule (floating T), an error otherwise
        return unary(a, [&](auto x) { return ar.reciprocal(x, j()); });
    }
    constexpr T div_int(T a, std::int64_t n) const
    {
        return unary(a, [&](auto x) { return ar.div_int(x, n, j()); });
    }
    constexpr T fma(T a, T b, T c) const
    {
        if (codec::isnan(a) || codec::isnan(b) || codec::isnan(c)) return codec::nan("NaN");
        return codec::raw(ar.fma(codec::word(a, frac()), codec::word(b, frac()), codec::word(c, frac()), j()), frac());
    }
    constexpr T neg(T a) const
    {
        return unary(a, [&](auto x) { return ar.neg(x); });
    }
    // Integers are exact in a format with F >= 0, which then draws no threshold.
    template <std::integral I>
    constexpr T from_integer(I i) const
    {
        return codec::raw(ar.from_integer(static_cast<int128>(i), frac() < 0 ? j() : 0), frac());
    }
};

// A kernel called on plain values, with the threshold of a stochastic rounding drawn from
// the thread's stochastic_scope.
template <class T, class K, bool Stochastic>
struct threshold_quantizer
{
    K kernel;
    constexpr T operator()(T x) const { return kernel.apply(x, next_threshold<T, Stochastic>()); }
};

// The operators of both number types, written once. D provides raw(), from_raw() and
// with_ops(fn), which calls fn with the exact_ops of its format and returns the raw result
// as a D.
template <class D, class T>
struct number_operators
{
    friend constexpr D operator+(D a, D b)
    {
        return D::with_ops([&](auto const& o) { return o.add(a.raw(), b.raw()); });
    }
    friend constexpr D operator-(D a, D b)
    {
        return D::with_ops([&](auto const& o) { return o.sub(a.raw(), b.raw()); });
    }
    friend constexpr D operator*(D a, D b)
    {
        return D::with_ops([&](auto const& o) { return o.mul(a.raw(), b.raw()); });
    }
    friend constexpr D operator/(D a, D b)
    {
        return D::with_ops([&](auto const& o) { return o.div(a.raw(), b.raw()); });
    }
    friend constexpr D operator-(D a)
    {
        return D::with_ops([&](auto const& o) { return o.neg(a.raw()); });
    }
    friend constexpr D operator+(D a) { return a; }
    constexpr D& operator+=(D b) { return self() = self() + b; }
    constexpr D& operator-=(D b) { return self() = self() - b; }
    constexpr D& operator*=(D b) { return self() = self() * b; }
    constexpr D& operator/=(D b) { return self() = self() / b; }

    friend constexpr bool operator==(D a, D b) noexcept { return a.raw() == b.raw(); }
    friend constexpr std::partial_ordering operator<=>(D a, D b) noexcept { return a.raw() <=> b.raw(); }

    friend constexpr D abs(D a) { return a.raw() < T(0) ? -a : a; }
    friend constexpr D sqrt(D a)
    {
        return D::with_ops([&](auto const& o) { return o.sqrt(a.raw()); });
    }
    // a b + c rounded once.
    friend constexpr D fma(D a, D b, D c)
    {
        return D::with_ops([&](auto const& o) { return o.fma(a.raw(), b.raw(), c.raw()); });
    }
    // 1 / a, the exact quotient rounded once (also where 1 is outside the format).
    friend constexpr D reciprocal(D a)
    {
        return D::with_ops([&](auto const& o) { return o.reciprocal(a.raw()); });
    }
    friend constexpr D min(D a, D b) noexcept { return b < a ? b : a; }
    friend constexpr D max(D a, D b) noexcept { return a < b ? b : a; }
    friend constexpr bool isnan(D a) noexcept { return storage_codec<T>::isnan(a.raw()); }
    friend constexpr bool isinf(D a) noexcept
    {
        if constexpr (std::is_floating_point_v<T>)
            return a.raw() == std::numeric_limits<T>::infinity() || a.raw() == -std::numeric_limits<T>::infinity();
        else
            return false;
    }
    friend constexpr bool isfinite(D a) noexcept { return !isnan(a) && !isinf(a); }
    friend constexpr bool signbit(D a) noexcept
    {
        if constexpr (std::is_floating_point_v<T>)
            return std::bit_cast<uint_for<T>>(a.raw()) >> (sizeof(T) * 8 - 1);
        else
            return a.raw() < 0;
    }
    // The value, as the storage prints it (integer storage: the value of the word).
    template <class Char, class Traits>
    friend std::basic_ostream<Char, Traits>& operator<<(std::basic_ostream<Char, Traits>& os, D a)
    {
        if constexpr (std::is_floating_point_v<T>)
            return os << a.raw();
        else
            return os << static_cast<long double>(a);
    }
    // a / n for an exact positive integer n (n is not quantized), rounded once.
    friend constexpr D divide(D a, std::int64_t n)
    {
        return D::with_ops([&](auto const& o) { return o.div_int(a.raw(), n); });
    }

private:
    constexpr D& self() noexcept { return static_cast<D&>(*this); }
};

} // namespace detail

namespace detail {

// A user-defined format: any default-constructible ElementQuantizer. Each operation is
// computed in the next wider float type (double for float storage, long double for
// double) and then quantized. That equals one rounding of the exact result whenever the
// wider operation is exact (a product of two floats in double always is; a sum is when
// the exponents differ by at most 29), provided Q accepts the wider type or the exact
// result is a T. Otherwise two roundings may differ from one near Q's decision points: a
// quantizer that must not see them declares `static constexpr bool needs_exact_arithmetic
// = true` and then needs its own specialisation of number_traits.
template <class Q>
concept declares_exact_arithmetic = requires
{
    requires Q::needs_exact_arithmetic;
};

template <class T>
using wider_float_t = std::conditional_t<std::is_same_v<T, float>, double, long double>;

template <class T, class Q,
          bool = std::is_floating_point_v<T>&& std::default_initializable<Q> && !declares_exact_arithmetic<Q>>
struct generic_number_traits
{
    static constexpr bool family = false;
};
template <class T, class Q>
struct generic_number_traits<T, Q, true>
{
    static constexpr bool family = ElementQuantizer<Q, T>;
    static constexpr bool integer_storage = false;
    static constexpr bool fits = true;
    using W = wider_float_t<T>;

    // the wider result, quantized (in the wider type when Q takes it)
    static constexpr T apply(W x)
    {
        if constexpr (ElementQuantizer<Q, W>)
            return static_cast<T>(Q{}(x));
        else
            return Q{}(static_cast<T>(x));
    }
    template <std::floating_point U>
    static constexpr T quantize(U x)
    {
        if constexpr (sizeof(U) > sizeof(T) && ElementQuantizer<Q, U>)
            return static_cast<T>(Q{}(x));
        else
            return Q{}(static_cast<T>(x));
    }
    struct wide_ops
    {
        constexpr T add(T a, T b) const { return apply(W(a) + W(b)); }
        constexpr T sub(T a, T b) const { return apply(W(a) - W(b)); }
        constexpr T mul(T a, T b) const { return apply(W(a) * W(b)); }
        constexpr T div(T a, T b) const { return apply(W(a) / W(b)); }
        T sqrt(T a) const { return apply(std::sqrt(W(a))); }
        T fma(T a, T b, T c) const { return apply(std::fma(W(a), W(b), W(c))); }
        constexpr T div_int(T a, std::int64_t n) const { return apply(W(a) / W(n)); }
        constexpr T neg(T a) const { return apply(-W(a)); }
        template <std::integral I>
        constexpr T from_integer(I i) const
        {
            return apply(static_cast<W>(i));
        }
    };
    static constexpr wide_ops ops() noexcept { return {}; }
    template <std::floating_point U>
    static constexpr U to(T raw) noexcept
    {
        return static_cast<U>(raw);
    }
};

// How quantized<T, Q> computes for each family of formats Q: whether T serves it, the
// exact operations (ops), quantizing a plain value, and the word.
template <class T, class Q>
struct builtin_number_traits : generic_number_traits<T, Q>
{
};

template <class T, int W, int F, class R, class O, bool S>
struct builtin_number_traits<T, fixed_point<W, F, R, O, S>>
{
    using Q = fixed_point<W, F, R, O, S>;
    static constexpr bool family = true;
    static constexpr bool integer_storage = std::is_integral_v<T>;
    static constexpr bool fits = integer_storage || Q::template fits<std::conditional_t<integer_storage, double, T>>;
    using codec = storage_codec<T>;
    static constexpr fixed_arith<R, O> arith{Q::format};

    template <std::floating_point U>
    static constexpr T quantize(U x)
    {
        constexpr bool stochastic = is_stochastic_rounding_v<R>;
        if constexpr (integer_storage) {
            if (x != x) codec::nan("NaN");
            // the exact W-bit word for any W; sign-extend it
            const std::uint64_t w = encode_fixed<U, R, O>(Q::format, x, next_threshold<U, stochastic>());
            const bool negative = S && W < 64 && ((w >> (W - 1)) & 1);
            return static_cast<T>(negative ? w | (~std::uint64_t(0) << W) : w);
        } else {
            using Wd = wider_t<T, U>;
            return static_cast<T>(
                Q{}.template kernel<Wd>().apply(static_cast<Wd>(x), next_threshold<Wd, stochastic>()));
        }
    }
    struct plain_quantizer
    {
        constexpr T operator()(T x) const
        {
            if constexpr (integer_storage)
                return x; // unused: integer storage never holds inf or NaN
            else
                return quantize(x);
        }
    };
    static constexpr plain_quantizer plain{};
    static constexpr auto ops() noexcept { return exact_ops<T, fixed_arith<R, O>, plain_quantizer>{arith, plain}; }

    template <std::floating_point U>
    static constexpr U to(T raw) noexcept
    {
        if constexpr (integer_storage)
            return std::ldexp(static_cast<U>(raw), -F);
        else
            return static_cast<U>(raw);
    }
    static std::uint64_t word(T raw) noexcept
    {
        if constexpr (integer_storage) {
            const std::uint64_t mask = W == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << W) - 1;
            return static_cast<std::uint64_t>(raw) & mask;
        } else {
            return Q{}.encode(raw);
        }
    }
};

// What the floating-point families share: T (float or double) holds the value itself.
template <class T, class Q>
struct float_storage_traits
{
    static constexpr bool family = true;
    static constexpr bool integer_storage = false;
    static constexpr bool fits =
        std::is_floating_point_v<T> && Q::template fits<std::conditional_t<std::is_floating_point_v<T>, T, double>>;
    template <std::floating_point U>
    static constexpr U to(T raw) noexcept
    {
        return static_cast<U>(raw);
    }
};

template <class T, minifloat_format Fm, class R, minifloat_overflow O>
struct builtin_number_traits<T, minifloat_of<Fm, R, O>> : float_storage_traits<T, minifloat_of<Fm, R, O>>
{
    using Q = minifloat_of<Fm, R, O>;
    static constexpr minifloat_arith<T, R> arith{Fm, O};

    template <std::floating_point U>
    static constexpr T quantize(U x)
    {
        using Wd = wider_t<T, U>;
        return static_cast<T>(
            Q{}.template kernel<Wd>().apply(static_cast<Wd>(x), next_threshold<Wd, is_stochastic_rounding_v<R>>()));
    }
    static constexpr auto ops() noexcept { return minifloat_ops<T, R>{arith}; }

    // The E + M + 1 bit code: sign, biased exponent, mantissa (NaN: all exponent and mantissa bits set).
    static std::uint64_t word(T raw) noexcept
    {
        const int M = Fm.mantissa_bits;
        const std::uint64_t sign = std::uint64_t(std::signbit(raw)) << (Fm.exponent_bits + M);
        const std::uint64_t all = (std::uint64_t(1) << (Fm.exponent_bits + M)) - 1;
        if (raw != raw) return sign | all;
        const T a = raw < 0 ? -raw : raw;
        if (a == std::numeric_limits<T>::infinity()) return sign | (all - ((std::uint64_t(1) << M) - 1));
        if (a == 0) return sign;
        const exact_float v = minifloat_arith<T, R>::decode(a);
        const int lead = v.exp + bit_length(v.sig) - 1;
        const int e = lead < Fm.min_exponent() ? Fm.min_exponent() : lead;
        const int shift = e - Fm.mantissa_bits - v.exp; // the mantissa field is exact: no bits are lost
        const auto m = static_cast<std::uint64_t>(shift >= 0 ? v.sig >> shift : v.sig << -shift);
        const std::uint64_t biased = lead < Fm.min_exponent() ? 0 : std::uint64_t(e + Fm.bias);
        return sign | (biased << M) | (m & ((std::uint64_t(1) << M) - 1));
    }
};

template <class T, log_rounding R, int EMin, int EMax>
struct builtin_number_traits<T, logarithmic_of<R, EMin, EMax>> : float_storage_traits<T, logarithmic_of<R, EMin, EMax>>
{
    using Q = logarithmic_of<R, EMin, EMax>;
    static constexpr logarithmic_arith<T> arith{R, EMin, EMax};

    template <std::floating_point U>
    static constexpr T quantize(U x)
    {
        using Wd = wider_t<T, U>;
        return static_cast<T>(Q{}.template kernel<Wd>()(static_cast<Wd>(x)));
    }
    static constexpr auto ops() noexcept { return logarithmic_ops<T>{arith}; }
    // sign and exponent: bit (1 + exponent bits) is the sign, then e - e_min + 1, 0 for zero
    // (so the code of 2^e_min is 1); NaN sets every bit.
    static std::uint64_t word(T raw) noexcept
    {
        const int bits = std::bit_width(unsigned(EMax - EMin + 1));
        const std::uint64_t sign = std::uint64_t(std::signbit(raw)) << bits;
        if (raw != raw) return (std::uint64_t(1) << (bits + 1)) - 1;
        if (raw == 0) return sign;
        return sign | std::uint64_t(logarithmic_arith<T>::exponent(raw) - EMin + 1);
    }
};

} // namespace detail

// The customisation point: how quantized<T, Q> computes with a format Q. Specialise it
// for a format of your own that needs exact arithmetic (family = true, fits, quantize,
// ops() with add, sub, mul, div, sqrt, fma, div_int, neg and from_integer on raw
// storage, and to<U>; word() optionally), as the built-in families do.
template <class T, class Q>
struct number_traits : detail::builtin_number_traits<T, Q>
{
};

// A type with Q::member, or nothing (the number type exposes what the format has).
namespace detail {
template <class Q>
struct format_of_quantizer
{
};
template <class Q>
    requires requires { Q::format; }
struct format_of_quantizer<Q>
{
    static constexpr auto format = Q::format;
};
template <class Q>
struct rounding_of_quantizer
{
    using type = void;
};
template <class Q>
    requires requires { typename Q::rounding_policy; }
struct rounding_of_quantizer<Q>
{
    using type = typename Q::rounding_policy;
};
} // namespace detail

template <class T, class Q>
    requires(std::floating_point<T> || std::is_same_v<T, std::int64_t>)
class quantized : public detail::number_operators<quantized<T, Q>, T>, public detail::format_of_quantizer<Q>
{
    using traits = number_traits<T, Q>;
    static_assert(traits::family,
                  "quantized<T, Q>: Q must be a fixed_point<W, F, Rounding, Overflow, Signed>, a minifloat_of<Format, "
                  "Rounding, Overflow>, a logarithmic_of<Rounding, EMin, EMax>, a default-constructible element "
                  "quantizer of T, or a format with its own specialisation of tensorquant::number_traits (a quantizer "
                  "that declares needs_exact_arithmetic needs one)");
    static constexpr bool integer_storage = std::is_integral_v<T>;

public:
    using value_type = T; // the storage: a float holding the value, or std::int64_t holding the word
    using quantizer_type = Q;
    using rounding_policy = typename detail::rounding_of_quantizer<Q>::type; // void when Q has none
    static_assert(traits::fits, "quantized<T, Q>: T does not hold every value of the format exactly");

    quantized() = default; // like T: value-initialisation gives 0, default-initialisation leaves it unset

    template <std::floating_point U>
    constexpr quantized(U x) : v_(traits::quantize(x))
    {}
    // Integers convert exactly (then the overflow policy applies), whatever their size.
    template <std::integral I>
    constexpr quantized(I x) : v_(traits::ops().from_integer(x))
    {}

    // From raw storage known to be in the format (no rounding): the value for a floating
    // T, the word for std::int64_t.
    static constexpr quantized from_raw(T raw) noexcept
    {
        quantized q;
        q.v_ = raw;
        return q;
    }
    constexpr T raw() const noexcept { return v_; }

    // The value (floating-point storage).
    constexpr T value() const noexcept requires(!integer_storage) { return v_; }
    // The value as U: exact when U holds the format, otherwise rounded to nearest.
    template <std::floating_point U>
    explicit constexpr operator U() const noexcept
    {
        return traits::template to<U>(v_);
    }
    // The format's code: the two's complement W-bit word of fixed point, zero-extended (NaN
    // gives 0); the sign, exponent and mantissa bits of a minifloat.
    std::uint64_t word() const noexcept requires requires(T r) { traits::word(r); }
    {
        return traits::word(v_);
    }

    // fn(the exact operations of the format) -> raw result, as a number (number_operators).
    template <class Fn>
    static constexpr quantized with_ops(Fn&& fn)
    {
        return from_raw(fn(traits::ops()));
    }

private:
    T v_;
};

// ---------------------------------------------------------------------------------------
// Runtime format.

// The format quantized_rt<T> operations use on this thread, for the lifetime of the scope.
// Scopes nest; a quantized_rt operation with no scope open throws.
class number_scope
{
public:
    // A stochastic format draws its thresholds from the thread's stochastic_scope.
    explicit number_scope(fixed_point_rt q) : q_(q), previous_(current_) { current_ = this; }
    number_scope(number_scope const&) = delete;
    number_scope& operator=(number_scope const&) = delete;
    ~number_scope() { current_ = previous_; }

    fixed_point_rt const& quantizer() const noexcept { return q_; }

    // A plain value in the format (a stochastic format takes its threshold from the
    // thread's stochastic_scope).
    template <std::floating_point T>
    T quantize(T x) const
    {
        return q_.visit<T>([&](auto const& k) -> T {
            if (q_.rounding() == rounding_mode::stochastic) return k.apply(x, stochastic_scope::current().next<T>());
            return k.apply(x, T(0));
        });
    }

    static number_scope const& current()
    {
        if (!current_) throw format_error("quantized_rt: no number_scope is open on this thread to give the format");
        return *current_;
    }

    // Calls fn(ops, quantize) with the typed exact operations of this scope's format.
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        detail::check_fixed_fits<T>(q_.format());
        return detail::visit_rounding(q_.rounding(), [&](auto r) -> decltype(auto) {
            return detail::visit_overflow(q_.overflow(), [&](auto o) -> decltype(auto) {
                using R = decltype(r);
                using O = decltype(o);
                const detail::fixed_arith<R, O> ar(q_.format());
                using K = detail::threshold_quantizer<T, detail::fixed_kernel<T, R, O>, is_stochastic_rounding_v<R>>;
                const K k{detail::fixed_kernel<T, R, O>(q_.format())};
                return fn(detail::exact_ops<T, detail::fixed_arith<R, O>, K>{ar, k});
            });
        });
    }

private:
    fixed_point_rt q_;
    number_scope const* previous_;
    static inline thread_local number_scope const* current_ = nullptr;
};

template <std::floating_point T>
class quantized_rt : public detail::number_operators<quantized_rt<T>, T>
{
public:
    using value_type = T;

    quantized_rt() = default;
    template <std::floating_point U>
    quantized_rt(U x) : v_(quantize_plain(x))
    {}
    template <std::integral I>
    quantized_rt(I x) : v_(number_scope::current().visit<T>([&](auto const& o) { return o.from_integer(x); }))
    {}
    static quantized_rt from_raw(T v) noexcept
    {
        quantized_rt q;
        q.v_ = v;
        return q;
    }
    explicit operator T() const noexcept { return v_; }
    template <std::floating_point U>
        requires(!std::is_same_v<U, T>)
    explicit operator U() const noexcept { return static_cast<U>(v_); }
    T value() const noexcept { return v_; }

    constexpr T raw() const noexcept { return v_; }

    template <class Fn>
    static quantized_rt with_ops(Fn&& fn)
    {
        return from_raw(number_scope::current().visit<T>([&](auto const& o) { return fn(o); }));
    }

private:
    template <std::floating_point U>
    static constexpr T quantize_plain(U x)
    {
        using Wd = detail::wider_t<T, U>;
        return static_cast<T>(number_scope::current().quantize(static_cast<Wd>(x)));
    }

    T v_;
};

// divide() for plain floating-point values, so generic layers call one name.
template <std::floating_point T>
constexpr T divide(T a, std::int64_t n) noexcept
{
    return a / static_cast<T>(n);
}

} // namespace tensorquant::inline TENSORQUANT_ABI

template <class T, int W, int F, class R_, class O_, bool S>
class std::numeric_limits<tensorquant::quantized<T, tensorquant::fixed_point<W, F, R_, O_, S>>>
{
    using Q = tensorquant::fixed_point<W, F, R_, O_, S>;
    using V = tensorquant::quantized<T, Q>;
    static constexpr auto f = Q::format;
    // raw storage: values for a floating T, words for std::int64_t
    static constexpr T step = std::is_integral_v<T> ? T(1) : T(tensorquant::detail::exp2i<double>(-f.frac));
    static constexpr tensorquant::word_range words = Q::overflow_policy::range(f);
    static constexpr T raw_of(tensorquant::detail::int128 w) noexcept
    {
        return std::is_integral_v<T> ? T(w) : T(double(w) * double(step));
    }
    using R = typename Q::rounding_policy;

public:
    static constexpr bool is_specialized = true;
    static constexpr bool is_signed = f.is_signed;
    static constexpr bool is_integer = false;
    static constexpr bool is_exact = true;
    static constexpr bool has_infinity = false;
    static constexpr bool has_quiet_NaN = !std::is_integral_v<T>; // a float storage holds NaN, which propagates
    static constexpr bool has_signaling_NaN = false;
    static constexpr std::float_denorm_style has_denorm = std::denorm_absent;
    static constexpr bool has_denorm_loss = false;
    static constexpr std::float_round_style round_style =
        std::is_same_v<R, tensorquant::rounding::zero>   ? std::round_toward_zero
        : std::is_same_v<R, tensorquant::rounding::down> ? std::round_toward_neg_infinity
        : std::is_same_v<R, tensorquant::rounding::up>   ? std::round_toward_infinity
                                                         : std::round_to_nearest;
    static constexpr bool is_iec559 = false;
    static constexpr bool is_bounded = true;
    static constexpr bool is_modulo = Q::overflow_policy::modular;
    static constexpr int digits = f.is_signed ? f.width - 1 : f.width;
    static constexpr int digits10 = digits * 30103 / 100000;
    static constexpr int max_digits10 = digits10 + 2;
    static constexpr int radix = 2;
    static constexpr int min_exponent = 0;
    static constexpr int min_exponent10 = 0;
    static constexpr int max_exponent = 0;
    static constexpr int max_exponent10 = 0;
    static constexpr bool traps = std::is_integral_v<T>; // integer storage throws on x / 0
    static constexpr bool tinyness_before = false;

    static constexpr V min() noexcept { return V::from_raw(step); } // smallest positive value
    static constexpr V max() noexcept { return V::from_raw(raw_of(words.hi)); }
    static constexpr V lowest() noexcept { return V::from_raw(raw_of(words.lo)); }
    static constexpr V epsilon() noexcept { return V::from_raw(step); }     // one step of the format
    static constexpr V round_error() noexcept { return V::from_raw(step); } // at most one step, for every rounding
    static constexpr V infinity() noexcept { return V::from_raw(T(0)); }
    static constexpr V quiet_NaN() noexcept
    {
        if constexpr (std::is_integral_v<T>)
            return V::from_raw(T(0));
        else
            return V::from_raw(std::numeric_limits<T>::quiet_NaN());
    }
    static constexpr V signaling_NaN() noexcept { return quiet_NaN(); }
    static constexpr V denorm_min() noexcept { return min(); }
};

template <class T, tensorquant::minifloat_format Fm, class R, tensorquant::minifloat_overflow O>
class std::numeric_limits<tensorquant::quantized<T, tensorquant::minifloat_of<Fm, R, O>>>
{
    using V = tensorquant::quantized<T, tensorquant::minifloat_of<Fm, R, O>>;
    static constexpr T pow2(int e) noexcept { return tensorquant::detail::exp2i<T>(e); }
    // floor(e log10 2) for the decimal exponents
    static constexpr int log10_of_pow2(int e) noexcept
    {
        return e >= 0 ? e * 30103 / 100000 : -((-e * 30103 + 99999) / 100000);
    }

public:
    static constexpr bool is_specialized = true;
    static constexpr bool is_signed = true;
    static constexpr bool is_integer = false;
    static constexpr bool is_exact = false;
    static constexpr bool has_infinity = Fm.ieee_specials && O == tensorquant::minifloat_overflow::to_infinity;
    static constexpr bool has_quiet_NaN = true; // 0/0 gives NaN in every format (the storage holds it)
    static constexpr bool has_signaling_NaN = false;
    static constexpr std::float_denorm_style has_denorm = Fm.subnormals ? std::denorm_present : std::denorm_absent;
    static constexpr bool has_denorm_loss = false;
    static constexpr std::float_round_style round_style =
        std::is_same_v<R, tensorquant::rounding::zero>         ? std::round_toward_zero
        : std::is_same_v<R, tensorquant::rounding::stochastic> ? std::round_indeterminate
                                                               : std::round_to_nearest;
    static constexpr bool is_iec559 = false;
    static constexpr bool is_bounded = true;
    static constexpr bool is_modulo = false;
    static constexpr int digits = Fm.mantissa_bits + 1;
    static constexpr int digits10 = Fm.mantissa_bits * 30103 / 100000;
    static constexpr int max_digits10 = 2 + digits * 30103 / 100000;
    static constexpr int radix = 2;
    static constexpr int min_exponent = Fm.min_exponent() + 1; // 2^(min_exponent - 1) is the smallest normal
    static constexpr int min_exponent10 = log10_of_pow2(Fm.min_exponent()) + 1;
    static constexpr int max_exponent = Fm.max_exponent() + 1;
    static constexpr int max_exponent10 = log10_of_pow2(Fm.max_exponent() + 1);
    static constexpr bool traps = false;
    static constexpr bool tinyness_before = false;

    static constexpr V min() noexcept { return V::from_raw(pow2(Fm.min_exponent())); } // smallest positive normal
    static constexpr V max() noexcept { return V::from_raw(tensorquant::detail::minifloat_max<T>(Fm)); }
    static constexpr V lowest() noexcept { return V::from_raw(-tensorquant::detail::minifloat_max<T>(Fm)); }
    static constexpr V epsilon() noexcept { return V::from_raw(pow2(-Fm.mantissa_bits)); } // 1 to the next value
    static constexpr V round_error() noexcept
    {
        return V::from_raw(round_style == std::round_to_nearest ? T(0.5) : T(1));
    }
    static constexpr V infinity() noexcept
    {
        return V::from_raw(has_infinity ? std::numeric_limits<T>::infinity() : T(0));
    }
    static constexpr V quiet_NaN() noexcept { return V::from_raw(std::numeric_limits<T>::quiet_NaN()); }
    static constexpr V signaling_NaN() noexcept { return quiet_NaN(); }
    static constexpr V denorm_min() noexcept
    {
        return Fm.subnormals ? V::from_raw(pow2(Fm.min_exponent() - Fm.mantissa_bits)) : min();
    }
};

template <class T, tensorquant::log_rounding R, int EMin, int EMax>
class std::numeric_limits<tensorquant::quantized<T, tensorquant::logarithmic_of<R, EMin, EMax>>>
{
    using V = tensorquant::quantized<T, tensorquant::logarithmic_of<R, EMin, EMax>>;
    static constexpr V pow2(int e) noexcept { return V::from_raw(tensorquant::detail::exp2i<T>(e)); }

public:
    static constexpr bool is_specialized = true;
    static constexpr bool is_signed = true;
    static constexpr bool is_integer = false;
    static constexpr bool is_exact = false;
    static constexpr bool has_infinity = false; // saturates
    static constexpr bool has_quiet_NaN = true;
    static constexpr bool has_signaling_NaN = false;
    static constexpr std::float_denorm_style has_denorm = std::denorm_absent;
    static constexpr bool has_denorm_loss = false;
    // floor of log2 |x| takes magnitudes toward zero; nearest is nearest in the log domain
    static constexpr std::float_round_style round_style =
        R == tensorquant::log_rounding::floor ? std::round_toward_zero : std::round_indeterminate;
    static constexpr bool is_iec559 = false;
    static constexpr bool is_bounded = true;
    static constexpr bool is_modulo = false;
    static constexpr int digits = 1;
    static constexpr int digits10 = 0;
    static constexpr int max_digits10 = 2;
    static constexpr int radix = 2;
    static constexpr int min_exponent = EMin + 1;
    static constexpr int min_exponent10 = EMin >= 0 ? EMin * 30103 / 100000 + 1 : -((-EMin * 30103) / 100000);
    static constexpr int max_exponent = EMax + 1;
    static constexpr int max_exponent10 = EMax >= 0 ? EMax * 30103 / 100000 : -((-EMax * 30103 + 99999) / 100000);
    static constexpr bool traps = false;
    static constexpr bool tinyness_before = false;

    static constexpr V min() noexcept { return pow2(EMin); }
    static constexpr V max() noexcept { return pow2(EMax); }
    static constexpr V lowest() noexcept { return V::from_raw(-tensorquant::detail::exp2i<T>(EMax)); }
    static constexpr V epsilon() noexcept { return pow2(0); } // 1 to the next value, 2
    static constexpr V round_error() noexcept { return pow2(0); }
    static constexpr V infinity() noexcept { return V::from_raw(T(0)); }
    static constexpr V quiet_NaN() noexcept { return V::from_raw(std::numeric_limits<T>::quiet_NaN()); }
    static constexpr V signaling_NaN() noexcept { return quiet_NaN(); }
    static constexpr V denorm_min() noexcept { return min(); }
};

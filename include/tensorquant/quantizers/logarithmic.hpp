// Logarithmic (power of two): sgn(x) 2^e with e in [e_min, e_max] (docs/reference.md §1.2).
// - log_rounding::floor: e = floor(log2 |x|), TensorQuant's kernel.
// - log_rounding::nearest: e = round(log2 |x|), nearest in the log domain: |x| rounds up
//   from 2^k once it reaches 2^k sqrt(2) (irrational, so there are no ties).
// Values whose e falls below e_min flush to +-0 (sign kept); above e_max they saturate
// to +-2^e_max, as do +-inf. NaN stays NaN. Zero stays zero.
// Exponent bounds default to T's whole normal range; an explicit bound must lie in
// [numeric_limits<T>::min_exponent, numeric_limits<T>::max_exponent - 1]
// ([-125, 127] for float, [-1021, 1023] for double) so that every decision is made on
// normal numbers.
#pragma once

#include "../config.hpp"

#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/spec.hpp"
#include "../detail/vector_ops.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI {

enum class log_rounding : std::uint8_t { floor, nearest };

// A bounded logarithmic format, as the compile-time quantizer and the number type see it.
struct log_format
{
    log_rounding rounding = log_rounding::floor;
    int min_exponent = 0;
    int max_exponent = 0;
    friend constexpr bool operator==(log_format const&, log_format const&) = default;
};

namespace detail {

// Works on the bit pattern: for |x| the bit patterns are ordered like the values, so the
// flush and saturation bounds are integer compares and rounding up is a carry into the
// exponent field.
template <class T>
struct log_kernel : kernel_calls<log_kernel<T>, T, false>
{
    using I = int_for<T>;
    static constexpr int mant_bits = std::numeric_limits<T>::digits - 1;
    I lower;     // |x| bits below this flush to zero
    I upper;     // |x| bits at or above this saturate
    I round_add; // added to |x| bits before masking the mantissa: carries iff rounding up
    I max_bits;  // bits of 2^e_max
    I inf_bits;
    I sign_mask;
    I exp_mask;

    template <class V>
    constexpr V apply(V const& x, V const&) const noexcept
    {
        using IV = int_vector_t<V>;
        IV b = to_bits(x);
        IV a = b & IV(~sign_mask);
        IV s = b & IV(sign_mask);
        IV y = wrapping_add(a, IV(round_add)) & IV(exp_mask); // NaN/inf bits may carry into the sign
        y = vselect(a < IV(lower), IV(I(0)), y);
        y = vselect(a >= IV(upper), IV(max_bits), y);
        y = vselect(a > IV(inf_bits), a, y); // NaN payload kept
        return from_bits(y | s);
    }
};

} // namespace detail

struct logarithmic : detail::descriptor_base<logarithmic>
{
    static constexpr int unbounded_low = std::numeric_limits<int>::min();
    static constexpr int unbounded_high = std::numeric_limits<int>::max();

    log_rounding rounding = log_rounding::floor;
    int min_exponent = unbounded_low;
    int max_exponent = unbounded_high;

    constexpr logarithmic() = default;
    constexpr explicit logarithmic(log_rounding r, int e_min = unbounded_low, int e_max = unbounded_high)
        : rounding(r), min_exponent(e_min), max_exponent(e_max)
    {
        if (e_min != unbounded_low && e_max != unbounded_high && e_min > e_max)
            throw format_error("logarithmic: e_min=" + std::to_string(e_min) +
                               " is above e_max=" + std::to_string(e_max));
    }

    template <std::floating_point T>
    constexpr detail::log_kernel<T> kernel() const
    {
        using I = detail::int_for<T>;
        using L = std::numeric_limits<T>;
        constexpr int mb = detail::log_kernel<T>::mant_bits;
        constexpr int bias = L::max_exponent - 1;
        const int lo_ok = L::min_exponent, hi_ok = L::max_exponent - 1;
        const int e_min = min_exponent == unbounded_low ? lo_ok : min_exponent;
        const int e_max = max_exponent == unbounded_high ? hi_ok : max_exponent;
        if (e_min < lo_ok || e_min > hi_ok || e_max < lo_ok || e_max > hi_ok || e_min > e_max)
            throw format_error("logarithmic: exponent range [" + std::to_string(e_min) + ", " + std::to_string(e_max) +
                               "] must lie within [" + std::to_string(lo_ok) + ", " + std::to_string(hi_ok) + "] for " +
                               (sizeof(T) == 4 ? "float" : "double"));
        auto pow2_bits = [&](int e) { return static_cast<I>(I(e + bias) << mb); };
        // Smallest mantissa field m with (1 + m 2^-mb)^2 >= 2, i.e. the first value >= sqrt 2.
        I sqrt2_field;
        if constexpr (sizeof(T) == 4)
            sqrt2_field = 0x3504f4; // 1.41421365737915 (float)
        else
            sqrt2_field = I(0x6a09e667f3bcdll); // 1.4142135623730951 (double)
        detail::log_kernel<T> k{};
        const I one_field = I(1) << mb;
        if (rounding == log_rounding::floor) {
            k.lower = pow2_bits(e_min);
            k.upper = pow2_bits(e_max + 1);
            k.round_add = 0;
        } else {
            k.lower = pow2_bits(e_min - 1) | sqrt2_field;
            k.upper = pow2_bits(e_max) | sqrt2_field;
            k.round_add = one_field - sqrt2_field;
        }
        k.max_bits = pow2_bits(e_max);
        k.inf_bits = pow2_bits(L::max_exponent) & ~(one_field - 1); // exponent field all ones
        k.sign_mask = static_cast<I>(I(1) << (sizeof(T) * 8 - 1));
        k.exp_mask = static_cast<I>(~(one_field - 1));
        return k;
    }

    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(kernel<T>());
    }

    // [-2^e_max, 2^e_max] for values of T (e_max defaults to T's largest exponent).
    template <std::floating_point T = float>
    std::pair<double, double> range() const noexcept
    {
        const int e = max_exponent == unbounded_high ? std::numeric_limits<T>::max_exponent - 1 : max_exponent;
        return {-std::ldexp(1.0, e), std::ldexp(1.0, e)};
    }

    // An unbounded side is spelled "none".
    static constexpr std::string_view form = "logarithmic[,floor|nearest[,e_min,e_max]]";
    static constexpr std::array<std::string_view, 4> examples{"logarithmic", "logarithmic,nearest",
                                                              "logarithmic,nearest,-6,3", "logarithmic,floor,none,0"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "logarithmic"; }
    static logarithmic parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(4, form);
        log_rounding lr = log_rounding::floor;
        if (r.size() >= 2) {
            if (r[1] == "floor")
                lr = log_rounding::floor;
            else if (r[1] == "nearest")
                lr = log_rounding::nearest;
            else
                r.fail("unknown logarithmic rounding \"" + std::string(r[1]) + "\"; expected floor or nearest");
        }
        if (r.size() == 3) r.fail("give both e_min and e_max, as \"logarithmic,floor,-8,0\"");
        if (r.size() < 4) return logarithmic(lr);
        const int lo = r[2] == "none" ? unbounded_low : r.integer(2, "e_min");
        const int hi = r[3] == "none" ? unbounded_high : r.integer(3, "e_max");
        return r.build([&] { return logarithmic(lr, lo, hi); });
    }
    std::string to_string() const
    {
        std::string s = "logarithmic";
        const bool bounded = min_exponent != unbounded_low || max_exponent != unbounded_high;
        if (rounding == log_rounding::nearest || bounded)
            s += rounding == log_rounding::nearest ? ",nearest" : ",floor";
        if (bounded)
            s += "," + (min_exponent == unbounded_low ? std::string("none") : std::to_string(min_exponent)) + "," +
                 (max_exponent == unbounded_high ? std::string("none") : std::to_string(max_exponent));
        return s;
    }
};

// Logarithmic with the rounding and exponent range as template arguments, for hardware
// models and the number type: the same kernel, the range checked at compile time.
template <log_rounding R = log_rounding::floor, int EMin = -24, int EMax = 0>
    requires(EMin <= EMax)
struct logarithmic_of
{
    using rounding_policy = std::integral_constant<log_rounding, R>;
    static constexpr log_rounding rounding = R;
    static constexpr int min_exponent = EMin;
    static constexpr int max_exponent = EMax;
    static constexpr log_format format{R, EMin, EMax};
    using dispatching_tag = void;

    template <std::floating_point T>
    static constexpr bool fits =
        EMin >= std::numeric_limits<T>::min_exponent&& EMax <= std::numeric_limits<T>::max_exponent - 1;

    static constexpr logarithmic runtime() { return logarithmic(R, EMin, EMax); }
    std::string to_string() const { return runtime().to_string(); }
    static std::pair<double, double> range() noexcept { return {-std::ldexp(1.0, EMax), std::ldexp(1.0, EMax)}; }

    template <std::floating_point T>
        requires fits<T>
    constexpr detail::log_kernel<T> kernel() const { return runtime().template kernel<T>(); }
    template <std::floating_point T, class Fn>
        requires fits<T>
    constexpr decltype(auto) visit(Fn&& fn) const { return fn(kernel<T>()); }
    template <std::floating_point T>
        requires fits<T>
    constexpr T operator()(T x) const { return kernel<T>()(x); }
    template <class T, class A>
        requires fits<T> xsimd::batch<T, A>
    operator()(xsimd::batch<T, A> const& x) const { return kernel<T>()(x); }
};

} // namespace tensorquant::inline TENSORQUANT_ABI

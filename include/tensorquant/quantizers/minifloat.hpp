// Minifloat: a binary floating-point format with E exponent bits, M mantissa bits and a
// bias (docs/reference.md §1.2), emulated in float or double.
// - IEEE-like formats (fp16, bf16, fp8 e5m2) keep the top exponent for inf/NaN;
//   "finite" formats (OCP fp8 e4m3) use it for numbers too, so e4m3's max is 448.
// - Rounding: nearest_even (default), nearest (ties away), zero or stochastic, applied to
//   the magnitude; the result keeps the sign of x, -0 included.
// - Overflow (a rounded magnitude above the largest finite): to_infinity gives inf, or
//   NaN for a finite-only format (OCP's non-saturating conversion); saturate gives max.
//   +-inf inputs are treated the same way. NaN stays NaN.
// - Without subnormals, results below the smallest normal flush to +-0.
// Valid formats, checked for the storage T: E >= 1, 1 <= M < digits(T), the exponent
// range within T's normal range, the smallest subnormal representable in T, and
// bias >= 1 - M.
#pragma once

#include "../config.hpp"

#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/rounding.hpp"
#include "../core/spec.hpp"
#include "../detail/vector_ops.hpp"

#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI {

struct minifloat_format
{
    int exponent_bits = 5;
    int mantissa_bits = 10;
    int bias = 15;
    bool subnormals = true;
    bool ieee_specials = true; // false: no infinities, top exponent holds numbers
    friend constexpr bool operator==(minifloat_format const&, minifloat_format const&) = default;

    constexpr int min_exponent() const noexcept { return 1 - bias; }
    constexpr int max_exponent() const noexcept { return (1 << exponent_bits) - (ieee_specials ? 2 : 1) - bias; }
};

namespace minifloats {
inline constexpr minifloat_format fp16{5, 10, 15, true, true};
inline constexpr minifloat_format bf16{8, 7, 127, true, true};
inline constexpr minifloat_format fp8_e4m3{4, 3, 7, true, false};
inline constexpr minifloat_format fp8_e5m2{5, 2, 15, true, true};
// The presets by name, for parsing and printing.
inline constexpr std::array<std::pair<std::string_view, minifloat_format>, 4> named{
    {{"fp16", fp16}, {"bf16", bf16}, {"fp8_e4m3", fp8_e4m3}, {"fp8_e5m2", fp8_e5m2}}};
} // namespace minifloats

enum class minifloat_overflow : std::uint8_t { to_infinity, saturate };

namespace detail {

// How a kernel scales |x| to the format's integer grid (chosen per format and T):
enum class minifloat_path {
    add_round, // ties-to-even by (|x| + C) - C with C = 2^(e + digits - 1 - M): the FPU rounds
    one_scale, // |x| 2^k with 2^k a normal T
    two_scales // the range of k needs two factors (bf16 in float)
};

template <class T, class R, minifloat_path P>
struct minifloat_kernel : kernel_calls<minifloat_kernel<T, R, P>, T, is_stochastic_rounding_v<R>>
{
    using I = int_for<T>;
    static constexpr int mant_bits = std::numeric_limits<T>::digits - 1;
    static constexpr int t_bias = std::numeric_limits<T>::max_exponent - 1;
    I e_min; // smallest normal exponent of the format
    I e_cap; // e_max + 1: larger |x| overflow whatever the rounding
    I m;     // mantissa bits of the format
    T max_finite;
    T overflow_value;
    T flush_below; // 0 with subnormals, else the smallest normal
    T scale_cap;   // 2^(M+2): scaled magnitudes beyond it overflow whatever the rounding
    counter_rng rng;

    template <class IV>
    static auto pow2(IV const& e) noexcept
    {
        return from_bits((e + IV(I(t_bias))) << mant_bits);
    }

    template <class V>
    V apply(V const& x, [[maybe_unused]] V const& u) const noexcept
    {
        using IV = int_vector_t<V>;
        const V a = vabs(x);
        IV e = (to_bits(a) >> mant_bits) - IV(I(t_bias)); // T subnormals read as e_min - 1 or below
        e = vselect(e > IV(e_min), e, IV(e_min));
        e = vselect(e < IV(e_cap), e, IV(e_cap));
        V y;
        if constexpr (P == minifloat_path::add_round) {
            const V c = pow2(e + IV(I(mant_bits) - m));
            y = (a + c) - c;
        } else {
            const IV k = IV(m) - e; // |x| 2^k has M + 1 integer bits
            V s;
            if constexpr (P == minifloat_path::one_scale)
                s = a * pow2(k);
            else
                s = a * pow2(k >> 1) * pow2(k - (k >> 1));
            // beyond 2^(M+2) everything overflows; keeps infinities out of trunc
            s = vselect(s > V(scale_cap), V(scale_cap), s);
            const V r = round_to_integer<R>(s, u);
            if constexpr (P == minifloat_path::one_scale)
                y = r * pow2(IV(I(0)) - k);
            else
                y = r * pow2((k >> 1) - k) * pow2(IV(I(0)) - (k >> 1));
        }
        y = vselect(y > V(max_finite), V(overflow_value), y);
        y = vselect(y < V(flush_below), V(T(0)), y);
        return vcopysign(y, x);
    }
};

inline std::string describe(minifloat_format f)
{
    return "minifloat (E=" + std::to_string(f.exponent_bits) + ", M=" + std::to_string(f.mantissa_bits) +
           ", bias=" + std::to_string(f.bias) + ")";
}

} // namespace detail

struct minifloat : detail::descriptor_base<minifloat>
{
    minifloat_format format = minifloats::fp16;
    rounding_mode rounding = rounding_mode::nearest_even;
    minifloat_overflow overflow = minifloat_overflow::to_infinity;
    rng_key key{};

    minifloat() = default;
    explicit minifloat(minifloat_format f, rounding_mode r = rounding_mode::nearest_even,
                       minifloat_overflow o = minifloat_overflow::to_infinity, rng_key k = {})
        : format(f), rounding(r), overflow(o), key(k)
    {
        auto bad = [&](std::string const& why) { throw format_error(detail::describe(f) + ": " + why); };
        if (f.exponent_bits < 1 || f.exponent_bits > 11) bad("exponent bits must be in [1, 11]");
        if (f.mantissa_bits < 1 || f.mantissa_bits > 52) bad("mantissa bits must be in [1, 52]");
        if (f.bias < 1 - f.mantissa_bits) bad("bias must be >= 1 - M");
        if (f.max_exponent() < f.min_exponent()) bad("the format has no normal numbers");
        if (r != rounding_mode::nearest_even && r != rounding_mode::nearest && r != rounding_mode::zero &&
            r != rounding_mode::stochastic)
            throw format_error(detail::describe(f) + ": rounding '" + std::string(tensorquant::to_string(r)) +
                               "' is not sign-symmetric; use nearest_even, nearest, zero or stochastic");
    }

    static constexpr std::string_view form =
        "minifloat,E,M[,bias][,option...] | fp16 | bf16 | fp8_e4m3 | fp8_e5m2[,option...]";
    static constexpr std::array<std::string_view, 6> examples{"fp16",
                                                              "bf16",
                                                              "fp8_e4m3",
                                                              "fp8_e5m2,stochastic",
                                                              "minifloat,3,2,1,saturate,no_subnormals",
                                                              "fp8_e4m3,nearest,ieee"};
    static bool accepts(detail::spec_reader const& r)
    {
        if (r.kind() == "minifloat") return true;
        for (auto const& [n, f] : minifloats::named)
            if (n == r.kind()) return true;
        return false;
    }
    static minifloat parse(detail::spec_reader const& r, rng_key key)
    {
        minifloat_format f{};
        std::size_t first_option = 1;
        if (r.kind() == "minifloat") {
            if (r.size() < 3)
                r.fail("minifloat needs exponent and mantissa bits, as \"minifloat,E,M[,bias][,option...]\"");
            f = {r.integer(1, "exponent bits E"), r.integer(2, "mantissa bits M"), 0, true, true};
            if (f.exponent_bits < 1 || f.exponent_bits > 11) r.fail("exponent bits E must be in [1, 11]");
            f.bias = (1 << (f.exponent_bits - 1)) - 1;
            first_option = 3;
            if (r.size() > 3 && (std::isdigit(static_cast<unsigned char>(r[3][0])) || r[3][0] == '-')) {
                f.bias = r.integer(3, "bias");
                first_option = 4;
            }
        } else {
            for (auto const& [n, preset] : minifloats::named)
                if (n == r.kind()) f = preset;
        }
        rounding_mode rm = rounding_mode::nearest_even;
        minifloat_overflow o = minifloat_overflow::to_infinity;
        for (std::size_t k = first_option; k < r.size(); ++k) {
            const auto t = r[k];
            if (auto m = rounding_from_name(t))
                rm = *m;
            else if (t == "to_infinity")
                o = minifloat_overflow::to_infinity;
            else if (t == "saturate")
                o = minifloat_overflow::saturate;
            else if (t == "no_subnormals")
                f.subnormals = false;
            else if (t == "subnormals")
                f.subnormals = true;
            else if (t == "finite")
                f.ieee_specials = false;
            else if (t == "ieee")
                f.ieee_specials = true;
            else
                r.fail("unknown minifloat option \"" + std::string(t) +
                       "\"; expected a rounding, to_infinity, saturate, no_subnormals, subnormals, finite or ieee");
        }
        return r.build([&] { return minifloat(f, rm, o, key); });
    }
    // [-max, max] of the finite values (in double).
    std::pair<double, double> range() const noexcept
    {
        const double top = std::ldexp(1.0, format.max_exponent());
        const double max = top * (2 - std::ldexp(1.0, (format.ieee_specials ? 0 : 1) - format.mantissa_bits));
        return {-max, max};
    }

    std::string to_string() const
    {
        std::string s;
        minifloat_format base{format.exponent_bits, format.mantissa_bits, format.bias, true,
                              format.ieee_specials}; // what the name alone means
        for (auto const& [n, preset] : minifloats::named)
            if (s.empty() && preset.exponent_bits == format.exponent_bits &&
                preset.mantissa_bits == format.mantissa_bits && preset.bias == format.bias)
                s = std::string(n), base = preset;
        if (s.empty()) {
            s = "minifloat," + std::to_string(format.exponent_bits) + "," + std::to_string(format.mantissa_bits) + "," +
                std::to_string(format.bias);
            base.ieee_specials = true;
        }
        if (rounding != rounding_mode::nearest_even) s += "," + std::string(tensorquant::to_string(rounding));
        if (overflow == minifloat_overflow::saturate) s += ",saturate";
        if (format.subnormals != base.subnormals) s += format.subnormals ? ",subnormals" : ",no_subnormals";
        if (format.ieee_specials != base.ieee_specials) s += format.ieee_specials ? ",ieee" : ",finite";
        return s;
    }

    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        using L = std::numeric_limits<T>;
        const int e_lo = format.min_exponent(), e_hi = format.max_exponent(), M = format.mantissa_bits;
        if (M >= L::digits || e_lo < L::min_exponent - 1 || e_hi > L::max_exponent - 1 ||
            e_lo - M < L::min_exponent - L::digits)
            throw format_error(detail::describe(format) + " is not exactly representable in " +
                               (sizeof(T) == 4 ? "float" : "double") + ": use a wider storage type");
        using I = detail::int_for<T>;
        const T top = detail::exp2i<T>(e_hi);
        const T max_finite =
            format.ieee_specials ? top * (T(2) - detail::exp2i<T>(-M)) : top * (T(2) - detail::exp2i<T>(1 - M));
        T over = max_finite;
        if (overflow == minifloat_overflow::to_infinity) over = format.ieee_specials ? L::infinity() : L::quiet_NaN();
        const T flush = format.subnormals ? T(0) : detail::exp2i<T>(e_lo);
        using detail::minifloat_path;
        constexpr int mb = L::digits - 1;
        const int cap = e_hi + 1;
        // every 2^k with k in [M - cap, M - e_lo] (and its inverse) a normal T?
        const bool one_scale = M - cap >= L::min_exponent - 1 + 1 && M - e_lo <= L::max_exponent - 2;
        auto run = [&](auto r, auto path) -> decltype(auto) {
            return fn(detail::minifloat_kernel<T, decltype(r), decltype(path)::value>{
                {}, I(e_lo), I(cap), I(M), max_finite, over, flush, detail::exp2i<T>(M + 2), key});
        };
        using add_round = std::integral_constant<minifloat_path, minifloat_path::add_round>;
        using one = std::integral_constant<minifloat_path, minifloat_path::one_scale>;
        using two = std::integral_constant<minifloat_path, minifloat_path::two_scales>;
        auto by_scale = [&](auto r) -> decltype(auto) { return one_scale ? run(r, one{}) : run(r, two{}); };
        switch (rounding) {
        case rounding_mode::nearest:
            return by_scale(rounding::nearest{});
        case rounding_mode::zero:
            return by_scale(rounding::zero{});
        case rounding_mode::stochastic:
            return by_scale(rounding::stochastic{});
        default:
            break;
        }
        // (|x| + C) - C needs C = 2^(e + mb - M) to be a finite T for every e up to cap
        if (cap + mb - M <= L::max_exponent - 1) return run(rounding::nearest_even{}, add_round{});
        return by_scale(rounding::nearest_even{});
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI

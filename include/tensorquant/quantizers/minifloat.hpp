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
    static constexpr auto pow2(IV const& e) noexcept
    {
        return from_bits((e + IV(I(t_bias))) << mant_bits);
    }

    template <class V>
    constexpr V apply(V const& x, [[maybe_unused]] V const& u) const noexcept
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

// The format's own rules (what the constructor checks), usable at compile time.
constexpr const char* minifloat_format_problem(minifloat_format f) noexcept
{
    if (f.exponent_bits < 1 || f.exponent_bits > 11) return "exponent bits must be in [1, 11]";
    if (f.mantissa_bits < 1 || f.mantissa_bits > 52) return "mantissa bits must be in [1, 52]";
    if (f.bias < 1 - f.mantissa_bits) return "bias must be >= 1 - M";
    if (f.max_exponent() < f.min_exponent()) return "the format has no normal numbers";
    return nullptr;
}

// Every value of the format, and every power of two the kernel scales by, is a T.
template <std::floating_point T>
constexpr bool minifloat_fits(minifloat_format f) noexcept
{
    using L = std::numeric_limits<T>;
    const int e_lo = f.min_exponent(), e_hi = f.max_exponent(), M = f.mantissa_bits;
    return !(M >= L::digits || e_lo < L::min_exponent - 1 || e_hi > L::max_exponent - 1 ||
             e_lo - M < L::min_exponent - L::digits);
}

// The signed roundings (the format's grid is symmetric, so only these make sense).
inline constexpr bool minifloat_rounding_allowed(rounding_mode r) noexcept
{
    return r == rounding_mode::nearest_even || r == rounding_mode::nearest || r == rounding_mode::zero ||
           r == rounding_mode::stochastic;
}

// The largest finite value of a format that fits T.
template <std::floating_point T>
constexpr T minifloat_max(minifloat_format f) noexcept
{
    const T top = exp2i<T>(f.max_exponent());
    return top * (T(2) - exp2i<T>((f.ieee_specials ? 0 : 1) - f.mantissa_bits));
}

// What an overflowing magnitude becomes.
template <std::floating_point T>
constexpr T minifloat_overflow_value(minifloat_format f, minifloat_overflow o) noexcept
{
    using L = std::numeric_limits<T>;
    if (o == minifloat_overflow::saturate) return minifloat_max<T>(f);
    return f.ieee_specials ? L::infinity() : L::quiet_NaN();
}

// The scaling path of the kernel for rounding r (the format fits T).
template <std::floating_point T>
constexpr minifloat_path minifloat_path_for(minifloat_format f, rounding_mode r) noexcept
{
    using L = std::numeric_limits<T>;
    const int M = f.mantissa_bits, cap = f.max_exponent() + 1;
    // (|x| + C) - C needs C = 2^(e + digits - 1 - M) to be a finite T for every e up to cap
    if (r == rounding_mode::nearest_even && cap + (L::digits - 1) - M <= L::max_exponent - 1)
        return minifloat_path::add_round;
    // every 2^k with k in [M - cap, M - e_min] (and its inverse) a normal T?
    const bool one_scale = M - cap >= L::min_exponent && M - f.min_exponent() <= L::max_exponent - 2;
    return one_scale ? minifloat_path::one_scale : minifloat_path::two_scales;
}

template <std::floating_point T, class R, minifloat_path P>
constexpr minifloat_kernel<T, R, P> make_minifloat_kernel(minifloat_format f, minifloat_overflow o,
                                                          rng_key key) noexcept
{
    using I = int_for<T>;
    return {{},
            I(f.min_exponent()),
            I(f.max_exponent() + 1),
            I(f.mantissa_bits),
            minifloat_max<T>(f),
            minifloat_overflow_value<T>(f, o),
            f.subnormals ? T(0) : exp2i<T>(f.min_exponent()),
            exp2i<T>(f.mantissa_bits + 2),
            counter_rng(key)};
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
        if (const char* problem = detail::minifloat_format_problem(f))
            throw format_error(detail::describe(f) + ": " + problem);
        if (!detail::minifloat_rounding_allowed(r))
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
            // appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "literal" + string
            s = "minifloat,";
            s += std::to_string(format.exponent_bits);
            s += ',';
            s += std::to_string(format.mantissa_bits);
            s += ',';
            s += std::to_string(format.bias);
            base.ieee_specials = true;
        }
        if (rounding != rounding_mode::nearest_even) (s += ',') += tensorquant::to_string(rounding);
        if (overflow == minifloat_overflow::saturate) s += ",saturate";
        if (format.subnormals != base.subnormals) s += format.subnormals ? ",subnormals" : ",no_subnormals";
        if (format.ieee_specials != base.ieee_specials) s += format.ieee_specials ? ",ieee" : ",finite";
        return s;
    }

    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        if (!detail::minifloat_fits<T>(format))
            throw format_error(detail::describe(format) + " is not exactly representable in " +
                               (sizeof(T) == 4 ? "float" : "double") + ": use a wider storage type");
        using detail::minifloat_path;
        const minifloat_path path = detail::minifloat_path_for<T>(format, rounding);
        auto run = [&](auto r) -> decltype(auto) {
            using R = decltype(r);
            auto with = [&](auto p) -> decltype(auto) {
                return fn(detail::make_minifloat_kernel<T, R, decltype(p)::value>(format, overflow, key));
            };
            using add_round = std::integral_constant<minifloat_path, minifloat_path::add_round>;
            using one = std::integral_constant<minifloat_path, minifloat_path::one_scale>;
            using two = std::integral_constant<minifloat_path, minifloat_path::two_scales>;
            if constexpr (std::is_same_v<R, rounding::nearest_even>)
                if (path == minifloat_path::add_round) return with(add_round{});
            return path == minifloat_path::one_scale ? with(one{}) : with(two{});
        };
        switch (rounding) {
        case rounding_mode::nearest:
            return run(rounding::nearest{});
        case rounding_mode::zero:
            return run(rounding::zero{});
        case rounding_mode::stochastic:
            return run(rounding::stochastic{});
        default:
            return run(rounding::nearest_even{});
        }
    }
};

// Minifloat with the format as template arguments, for hardware models and the number
// type: the same kernel as minifloat, with the format checked at compile time.
template <minifloat_format Format, RoundingPolicy R = rounding::nearest_even,
          minifloat_overflow Overflow = minifloat_overflow::to_infinity>
    requires(detail::minifloat_format_problem(Format) == nullptr && requires { R::mode; } &&
             detail::minifloat_rounding_allowed(R::mode))
struct minifloat_of
{
    using rounding_policy = R;
    static constexpr minifloat_format format = Format;
    static constexpr minifloat_overflow overflow = Overflow;

    rng_key key{}; // used by stochastic rounding only
    using dispatching_tag = void;

    template <std::floating_point T>
    static constexpr bool fits = detail::minifloat_fits<T>(Format);

    static std::pair<double, double> range() noexcept { return runtime().range(); }
    // The same quantizer as a runtime descriptor.
    static minifloat runtime(rng_key k = {}) { return minifloat(Format, R::mode, Overflow, k); }
    std::string to_string() const { return runtime().to_string(); }

    template <std::floating_point T>
        requires fits<T>
    constexpr auto kernel() const noexcept
    {
        constexpr detail::minifloat_path path = detail::minifloat_path_for<T>(Format, R::mode);
        return detail::make_minifloat_kernel<T, R, path>(Format, Overflow, key);
    }
    template <std::floating_point T, class Fn>
        requires fits<T>
    constexpr decltype(auto) visit(Fn&& fn) const { return fn(kernel<T>()); }

    template <std::floating_point T>
        requires(fits<T> && !is_stochastic_rounding_v<R>)
    constexpr T operator()(T x) const noexcept { return kernel<T>()(x); }
    template <std::floating_point T>
        requires(fits<T>&& is_stochastic_rounding_v<R>)
    constexpr T operator()(T x, std::uint64_t i) const noexcept { return kernel<T>()(x, i); }
    template <class T, class A>
        requires(fits<T> && !is_stochastic_rounding_v<R>)
    xsimd::batch<T, A>
    operator()(xsimd::batch<T, A> const& x) const noexcept { return kernel<T>()(x); }
    template <class T, class A>
        requires(fits<T>&& is_stochastic_rounding_v<R>)
    xsimd::batch<T, A>
    operator()(xsimd::batch<T, A> const& x, std::uint64_t i) const noexcept { return kernel<T>()(x, i); }
};

namespace minifloats {
using fp16_t = minifloat_of<fp16>;
using bf16_t = minifloat_of<bf16>;
using fp8_e4m3_t = minifloat_of<fp8_e4m3>;
using fp8_e5m2_t = minifloat_of<fp8_e5m2>;
} // namespace minifloats

} // namespace tensorquant::inline TENSORQUANT_ABI

// Fixed point (W, F): a two's complement (or unsigned) integer of W bits, F of them
// fractional; resolution 2^-F (paper eq. 1-5; docs/reference.md §1.1).
//
// Supported formats: 1 <= W <= 64 and -64 <= F <= 64 (F > W and F < 0 are meaningful:
// all-fractional words and coarse steps). Quantizing into a floating-point T needs every
// value of the format to be a T, i.e. W <= digits(T): 24 for float, 53 for double.
// Wider formats are rejected for that T (compile time for fixed_point<>, format_error for
// fixed_point_rt) and are served by encode(), which returns the W-bit word exactly.
//
// Special values: NaN stays NaN. +-inf saturate to the bounds under saturate and
// symmetric; under wrap an infinity has no residue and gives NaN. Results are never -0.
#pragma once

#include "../config.hpp"

#include "../core/concepts.hpp"
#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/fixed_format.hpp"
#include "../core/overflow.hpp"
#include "../core/random.hpp"
#include "../core/range_watch.hpp"
#include "../core/rounding.hpp"
#include "../core/spec.hpp"
#include "../detail/vector_ops.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI {

// The values a fixed-point format holds under overflow policy O: [lo, hi] as doubles
// (the words of O::range times 2^-F, rounded to nearest double beyond 53 bits).
template <OverflowPolicy O>
std::pair<double, double> value_range(fixed_format f) noexcept
{
    const word_range r = O::range(f);
    return {std::ldexp(double(r.lo), -f.frac), std::ldexp(double(r.hi), -f.frac)};
}

namespace detail {

// TensorQuant's spelling of a fixed-point format: rounding,W,F[,overflow][,unsigned].
inline std::string fixed_spec(fixed_format f, rounding_mode r, overflow_mode o)
{
    std::string s = std::string(to_string(r)) + "," + std::to_string(f.width) + "," + std::to_string(f.frac);
    if (o != overflow_mode::saturate) s += "," + std::string(to_string(o));
    if (!f.is_signed) s += ",unsigned";
    return s;
}

// The one kernel behind every fixed-point quantizer, compile-time or runtime format.
template <class T, class R, class O>
struct fixed_kernel : kernel_calls<fixed_kernel<T, R, O>, T, is_stochastic_rounding_v<R>>
{
    static_assert(std::floating_point<T>);
    T scale, inv_scale; // 2^F, 2^-F
    T lo, hi;           // bounds of the integer word, in units of 2^-F
    T modulus, inv_modulus, half_modulus;
    T wrap_bound;    // |x 2^F| beyond this wraps to 0 (its low W bits are all 0)
    bool guard_tiny; // F < 0: x 2^F can underflow; keep its sign and non-zero-ness
    bool is_signed;
    counter_rng rng;
    range_flag* watch; // core/range_watch.hpp: where values beyond the range are reported

    constexpr fixed_kernel(fixed_format f, rng_key k = {}) noexcept
        : scale(exp2i<T>(f.frac)), inv_scale(exp2i<T>(-f.frac)), lo(static_cast<T>(O::range(f).lo)),
          hi(static_cast<T>(O::range(f).hi)), modulus(exp2i<T>(f.width)), inv_modulus(exp2i<T>(-f.width)),
          half_modulus(f.is_signed ? exp2i<T>(f.width - 1) : exp2i<T>(f.width)),
          wrap_bound(exp2i<T>(f.width + std::numeric_limits<T>::digits)), guard_tiny(f.frac < 0),
          is_signed(f.is_signed), rng(k), watch(current_range_flag())
    {}

    // x 2^F, exactly; with F < 0 a tiny x whose product underflows is replaced by the
    // smallest normal of the same sign, which rounds the same way under every policy.
    template <class V>
    constexpr V scaled(V const& x) const noexcept
    {
        V xs = x * V(scale);
        if (guard_tiny) {
            constexpr T tiny = std::numeric_limits<T>::min();
            xs = vselect((vabs(xs) < V(tiny)) && (x != V(T(0))), vcopysign(V(tiny), x), xs);
        }
        if constexpr (O::modular) {
            xs = vselect(xs > V(wrap_bound), V(wrap_bound), xs);
            xs = vselect(xs < V(-wrap_bound), V(-wrap_bound), xs);
        }
        return xs;
    }

    // Rounds x 2^F to an integer-valued T with policy R (u: stochastic threshold).
    template <class V>
    constexpr V round(V const& xs, V const& u) const noexcept
    {
        return round_to_integer<R>(xs, u);
    }

    // Saturating formats clamp x 2^F to [lo, hi] before rounding: lo and hi are integers,
    // so rounding stays inside, and infinities become finite before trunc. (apply() and
    // the watched products report to the range watch; the pieces themselves do not.)
    template <class V>
    constexpr V clamp_scaled(V const& xs) const noexcept
    {
        if constexpr (std::is_arithmetic_v<V>) {
            V c = xs > hi ? V(hi) : xs; // NaN compares false and passes through
            return c < lo ? V(lo) : c;
        } else {
            // x86 and NEON min/max return the second operand when one is NaN
            return xsimd::max(V(lo), xsimd::min(V(hi), xs));
        }
    }

    // Two's complement wrap of the rounded integer r.
    template <class V>
    constexpr V wrap(V const& r, V const& x) const noexcept
    {
        V m = r - vfloor(r * V(inv_modulus)) * V(modulus); // exact, in [0, 2^W)
        if (is_signed) m = vselect(m >= V(half_modulus), m - V(modulus), m);
        // +-inf has no residue modulo 2^W
        return vselect(vabs(x) == V(std::numeric_limits<T>::infinity()), x - x, m);
    }

    // Reports integer-valued words (or scaled values) outside [lo, hi] to the watch.
    template <class V>
    constexpr void note_beyond(V const& v) const noexcept
    {
        if constexpr (std::is_arithmetic_v<V>) {
            if (v > hi || v < lo) watch->note();
        } else {
            if (xsimd::any((v > V(hi)) | (v < V(lo)))) watch->note();
        }
    }

    template <class V>
    constexpr V apply(V const& x, V const& u) const noexcept
    {
        V r;
        if constexpr (O::modular) {
            r = round(scaled(x), u);
            if (watch) [[unlikely]]
                note_beyond(r);
            r = wrap(r, x);
        } else {
            const V xs = scaled(x);
            if (watch) [[unlikely]]
                note_beyond(xs);
            r = round(clamp_scaled(xs), u);
        }
        // r 2^-F + 0: exact, and turns -0 into +0 (a fixed-point word has one zero)
        return mul_add(r, V(inv_scale), V(T(0)));
    }
};

// The W-bit word of x (two's complement, zero-extended to 64 bits), exact for every
// supported format and both float and double. NaN encodes as 0; so does an infinity
// under a modular policy (it has no residue).
template <class T, class R, class O>
std::uint64_t encode_fixed(fixed_format f, T x, [[maybe_unused]] T u) noexcept
{
    if (x != x) return 0;
    const std::uint64_t mask = f.width == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << f.width) - 1;
    // scaled and rounded, integer-valued (or +-inf); kernel math needs no W <= digits
    fixed_kernel<T, R, overflow::saturate> k(fixed_format{std::min(f.width, 2), f.frac, true});
    const T xs = k.scaled(x);
    const T r = std::isinf(xs) ? xs : k.round(xs, u);
    int128 n;
    if (std::isinf(r) || std::fabs(r) >= T(0x1p126)) {
        // beyond every word: saturates, or (a multiple of 2^73 at least) wraps to 0
        if constexpr (O::modular)
            return 0;
        else
            n = r > 0 ? O::range(f).hi : O::range(f).lo;
    } else {
        n = fit_word<O>(static_cast<int128>(r), f);
    }
    return static_cast<std::uint64_t>(n) & mask;
}

} // namespace detail

// Fixed point with the format as template arguments, for hardware models.
template <int W, int F, RoundingPolicy R = rounding::nearest, OverflowPolicy O = overflow::saturate, bool Signed = true>
    requires(detail::fixed_format_exists(W, F, Signed))
struct fixed_point
{
    using rounding_policy = R;
    using overflow_policy = O;
    static constexpr fixed_format format{W, F, Signed};
    static constexpr int width = W;
    static constexpr int frac = F;

    rng_key key{}; // used by stochastic rounding only
    using dispatching_tag = void;

    template <std::floating_point T>
    static constexpr bool fits = W <= std::numeric_limits<T>::digits;

    // [lowest, max] of the values.
    static std::pair<double, double> range() noexcept { return value_range<O>(format); }

    template <std::floating_point T>
        requires fits<T>
    constexpr detail::fixed_kernel<T, R, O> kernel() const noexcept
    {
        return detail::fixed_kernel<T, R, O>(format, key);
    }

    // Bulk loops take the kernel once; a T the format does not fit is a compile error.
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

    // The W-bit word, exact for every W (element index i feeds stochastic rounding).
    template <std::floating_point T>
    std::uint64_t encode(T x, std::uint64_t i = 0) const noexcept
    {
        return detail::encode_fixed<T, R, O>(format, x,
                                             is_stochastic_rounding_v<R> ? detail::uniform_at<T>(key, i) : T(0));
    }

    // The string of the same format (built-in policies have one).
    std::string to_string() const requires requires
    {
        R::mode;
        O::mode;
    }
    {
        return detail::fixed_spec(format, R::mode, O::mode);
    }
    // Policies with a name but no enumerator (user-defined) are named by it.
    std::string name() const
    {
        return std::string(R::name) + "," + std::to_string(W) + "," + std::to_string(F) + "," + std::string(O::name) +
               (Signed ? "" : ",unsigned");
    }
};

template <int W, int F, RoundingPolicy R = rounding::nearest, OverflowPolicy O = overflow::saturate>
using ufixed_point = fixed_point<W, F, R, O, false>;

// Fixed point with the format chosen at run time, for sweeps. visit<T>() hands loops the
// same kernel fixed_point<> uses, so both give identical results.
class fixed_point_rt : public detail::descriptor_base<fixed_point_rt>
{
public:
    fixed_point_rt(fixed_format f, rounding_mode r = rounding_mode::nearest, overflow_mode o = overflow_mode::saturate,
                   rng_key key = {})
        : fmt_(f), rounding_(r), overflow_(o), key_(key)
    {
        detail::check_fixed_format(f);
    }
    fixed_point_rt(int width, int frac, rounding_mode r = rounding_mode::nearest,
                   overflow_mode o = overflow_mode::saturate, rng_key key = {})
        : fixed_point_rt(fixed_format{width, frac, true}, r, o, key)
    {}

    fixed_format format() const noexcept { return fmt_; }
    rounding_mode rounding() const noexcept { return rounding_; }
    overflow_mode overflow() const noexcept { return overflow_; }
    rng_key key() const noexcept { return key_; }
    std::pair<double, double> range() const
    {
        return detail::visit_overflow(overflow_, [&](auto o) { return value_range<decltype(o)>(fmt_); });
    }

    // Throws format_error when the format does not fit T exactly.
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        detail::check_fixed_fits<T>(fmt_);
        return detail::visit_rounding(rounding_, [&](auto r) -> decltype(auto) {
            return detail::visit_overflow(overflow_, [&](auto o) -> decltype(auto) {
                return fn(detail::fixed_kernel<T, decltype(r), decltype(o)>(fmt_, key_));
            });
        });
    }

    static constexpr std::string_view form = "rounding,W,F[,saturate|symmetric|wrap][,signed|unsigned]";
    static constexpr std::array<std::string_view, 10> examples{"nearest,8,4",
                                                               "nearest_even,12,6,wrap",
                                                               "nearest_up,10,3,symmetric",
                                                               "nearest_down,7,2",
                                                               "nearest_zero,9,9",
                                                               "zero,16,8",
                                                               "down,5,-2",
                                                               "up,6,1,unsigned",
                                                               "stochastic,8,4",
                                                               "stochastic,24,20,wrap"};
    static bool accepts(detail::spec_reader const& r) { return rounding_from_name(r.kind()).has_value(); }
    static fixed_point_rt parse(detail::spec_reader const& r, rng_key key)
    {
        if (r.size() < 3)
            r.fail(std::string("fixed point needs word size and fractional bits, as \"") + std::string(form) + "\"");
        r.at_most(5, form);
        fixed_format f{r.integer(1, "word size W"), r.integer(2, "fractional bits F"), true};
        overflow_mode o = overflow_mode::saturate;
        for (std::size_t k = 3; k < r.size(); ++k) {
            const auto t = r[k];
            if (auto m = overflow_from_name(t))
                o = *m;
            else if (t == "signed")
                f.is_signed = true;
            else if (t == "unsigned")
                f.is_signed = false;
            else
                r.fail("unknown option \"" + std::string(t) +
                       "\"; expected saturate, symmetric, wrap, signed or unsigned");
        }
        return r.build([&] { return fixed_point_rt(f, *rounding_from_name(r.kind()), o, key); });
    }
    std::string to_string() const { return detail::fixed_spec(fmt_, rounding_, overflow_); }

    template <std::floating_point T>
    std::uint64_t encode(T x, std::uint64_t i = 0) const
    {
        return detail::visit_rounding(rounding_, [&](auto r) {
            return detail::visit_overflow(overflow_, [&](auto o) {
                using Rr = decltype(r);
                T u = is_stochastic_rounding_v<Rr> ? detail::uniform_at<T>(key_, i) : T(0);
                return detail::encode_fixed<T, Rr, decltype(o)>(fmt_, x, u);
            });
        });
    }

private:
    fixed_format fmt_;
    rounding_mode rounding_;
    overflow_mode overflow_;
    rng_key key_;
};

// Value of a W-bit word (sign-extended when the format is signed). Exact when
// W <= digits(T); otherwise rounded to nearest T.
template <std::floating_point T>
T decode(fixed_format f, std::uint64_t word) noexcept
{
    std::int64_t v;
    if (f.is_signed && f.width < 64 && (word >> (f.width - 1)) & 1)
        v = static_cast<std::int64_t>(word | (~std::uint64_t(0) << f.width));
    else
        v = static_cast<std::int64_t>(word);
    return static_cast<T>(v) * detail::exp2i<T>(-f.frac);
}

} // namespace tensorquant::inline TENSORQUANT_ABI

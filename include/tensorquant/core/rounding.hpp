// Rounding policies. Each rounds a real value v to an integer given t = trunc(v) and
// the remainder e = v - t (exact in floating point, |e| < 1, sign of v), so no policy
// ever computes v + 0.5 and rounds twice. The same template serves scalars and SIMD
// batches, so both paths are one code.
//
// The built-in policies are one list, rounding::all: the runtime enum's names, parsing,
// printing and visit are derived from it. A policy is any type with a `name` and
// apply(t, e) (or apply(t, e, u) for a stochastic one, u the threshold in [0, 1)); a
// user-defined one works with fixed_point<W, F, R, O> and quantized<T, Q> unchanged.
// Adding a built-in: the tag below, its enumerator, and its place in rounding::all.
#pragma once

#include "../config.hpp"

#include "../detail/vector_ops.hpp"
#include "error.hpp"
#include "type_list.hpp"

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tensorquant::inline TENSORQUANT_ABI {

// Runtime names of the built-in policies, for formats chosen at run time; the order is
// that of rounding::all.
enum class rounding_mode : std::uint8_t {
    nearest,
    nearest_even,
    nearest_up,
    nearest_down,
    nearest_zero,
    zero,
    down,
    up,
    stochastic
};

namespace rounding {

// Paper eq. 2, sgn(x) floor(|x| + 1/2): ties away from zero (AP_RND_INF, std::round).
struct nearest
{
    static constexpr std::string_view name = "nearest";
    static constexpr rounding_mode mode = rounding_mode::nearest;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        // |e| >= 1/2 exactly when trunc(2e) = +-1 (2e is exact)
        return t + detail::vtrunc(e + e);
    }
};
// Ties to even (IEEE default, AP_RND_CONV, PyTorch and NumPy rounding).
struct nearest_even
{
    static constexpr std::string_view name = "nearest_even";
    static constexpr rounding_mode mode = rounding_mode::nearest_even;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        V a = detail::vabs(e);
        V h = t * detail::half<V>();
        auto odd = detail::vfloor(h) != h;
        auto away = (a > detail::half<V>()) || ((a == detail::half<V>()) && odd);
        return t + detail::vcopysign(detail::one_if<V>(away), e);
    }
};
// Ties toward +infinity (AP_RND).
struct nearest_up
{
    static constexpr std::string_view name = "nearest_up";
    static constexpr rounding_mode mode = rounding_mode::nearest_up;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        return t + detail::one_if<V>(e >= detail::half<V>()) - detail::one_if<V>(e < -detail::half<V>());
    }
};
// Ties toward -infinity (AP_RND_MIN_INF).
struct nearest_down
{
    static constexpr std::string_view name = "nearest_down";
    static constexpr rounding_mode mode = rounding_mode::nearest_down;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        return t + detail::one_if<V>(e > detail::half<V>()) - detail::one_if<V>(e <= -detail::half<V>());
    }
};
// Ties toward zero (AP_RND_ZERO).
struct nearest_zero
{
    static constexpr std::string_view name = "nearest_zero";
    static constexpr rounding_mode mode = rounding_mode::nearest_zero;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        return t + detail::vcopysign(detail::one_if<V>(detail::vabs(e) > detail::half<V>()), e);
    }
};
// Paper eq. 3, truncation toward zero (AP_TRN_ZERO).
struct zero
{
    static constexpr std::string_view name = "zero";
    static constexpr rounding_mode mode = rounding_mode::zero;
    template <class V>
    static constexpr V apply(V const& t, V const&) noexcept
    {
        return t;
    }
};
// Paper eq. 4, floor (AP_TRN): drops the low bits of a two's complement word.
struct down
{
    static constexpr std::string_view name = "down";
    static constexpr rounding_mode mode = rounding_mode::down;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        return t - detail::one_if<V>(e < V(detail::value_type_t<V>(0)));
    }
};
// Ceiling.
struct up
{
    static constexpr std::string_view name = "up";
    static constexpr rounding_mode mode = rounding_mode::up;
    template <class V>
    static constexpr V apply(V const& t, V const& e) noexcept
    {
        return t + detail::one_if<V>(e > V(detail::value_type_t<V>(0)));
    }
};
// Paper eq. 5: v rounds up with probability frac(v), so E[Q(v)] = v. The threshold u in
// [0, 1) from the counter-based generator is applied to the magnitude: |v| moves away
// from zero exactly when frac(|v|) = |e| > u. (Same distribution as floor(v) + [frac(v) > u],
// fewer operations, and symmetric in the sign.)
struct stochastic
{
    static constexpr std::string_view name = "stochastic";
    static constexpr rounding_mode mode = rounding_mode::stochastic;
    template <class V>
    static constexpr V apply(V const& t, V const& e, V const& u) noexcept
    {
        return t + detail::vcopysign(detail::one_if<V>(detail::vabs(e) > u), e);
    }
};

using all = type_list<nearest, nearest_even, nearest_up, nearest_down, nearest_zero, zero, down, up, stochastic>;

} // namespace rounding

// A stochastic policy takes the threshold u as a third argument.
template <class R>
inline constexpr bool is_stochastic_rounding_v = requires(double t, double e, double u)
{
    {
        R::apply(t, e, u)
        } -> std::convertible_to<double>;
};

template <class R>
concept RoundingPolicy = requires
{
    {
        R::name
        } -> std::convertible_to<std::string_view>;
}
&&(is_stochastic_rounding_v<R> || requires(double t, double e) {
    {
        R::apply(t, e)
        } -> std::convertible_to<double>;
});

namespace detail {

static_assert(modes_in_list_order(rounding::all{}), "rounding::all must list the policies in rounding_mode order");

// Calls f with the policy tag of a runtime mode (one dispatch, outside any loop).
template <class F>
decltype(auto) visit_rounding(rounding_mode m, F&& f)
{
    return visit_by_mode(rounding::all{}, m, f,
                         [m] { throw format_error("unknown rounding mode " + std::to_string(static_cast<int>(m))); });
}

// The one rounding step of every kernel: v rounded to an integer-valued V by policy R,
// through t = trunc(v) and the exact remainder e = v - t (u: the stochastic threshold).
template <class R, class V>
constexpr V round_to_integer(V const& v, [[maybe_unused]] V const& u) noexcept
{
    const V t = vtrunc(v);
    const V e = v - t;
    if constexpr (is_stochastic_rounding_v<R>)
        return R::apply(t, e, u);
    else
        return R::apply(t, e);
}

} // namespace detail

// The enumerator of a built-in policy (a user-defined policy has none).
template <class R>
    requires requires { R::mode; }
constexpr rounding_mode rounding_mode_of() noexcept { return R::mode; }

constexpr std::string_view to_string(rounding_mode m) noexcept { return detail::name_of_mode(rounding::all{}, m); }

inline std::optional<rounding_mode> rounding_from_name(std::string_view n) noexcept
{
    return detail::mode_from_name<rounding_mode>(rounding::all{}, n);
}

} // namespace tensorquant::inline TENSORQUANT_ABI

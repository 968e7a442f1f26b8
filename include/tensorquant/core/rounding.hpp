// Rounding policies. Each rounds a real value v to an integer given t = trunc(v) and
// the remainder e = v - t (exact in floating point, |e| < 1, sign of v), so no policy
// ever computes v + 0.5 and rounds twice. The same template serves scalars and SIMD
// batches, so both paths are one code.
#pragma once

#include "../detail/vector_ops.hpp"

#include <cstdint>
#include <string_view>

namespace tensorquant {

namespace rounding {

// Paper eq. 2, sgn(x) floor(|x| + 1/2): ties away from zero (AP_RND_INF, std::round).
struct nearest
{
    static constexpr std::string_view name = "nearest";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        // |e| >= 1/2 exactly when trunc(2e) = +-1 (2e is exact)
        return t + detail::vtrunc(e + e);
    }
};
// Ties to even (IEEE default, AP_RND_CONV, PyTorch and NumPy rounding).
struct nearest_even
{
    static constexpr std::string_view name = "nearest_even";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
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
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        return t + detail::one_if<V>(e >= detail::half<V>()) - detail::one_if<V>(e < -detail::half<V>());
    }
};
// Ties toward -infinity (AP_RND_MIN_INF).
struct nearest_down
{
    static constexpr std::string_view name = "nearest_down";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        return t + detail::one_if<V>(e > detail::half<V>()) - detail::one_if<V>(e <= -detail::half<V>());
    }
};
// Ties toward zero (AP_RND_ZERO).
struct nearest_zero
{
    static constexpr std::string_view name = "nearest_zero";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        return t + detail::vcopysign(detail::one_if<V>(detail::vabs(e) > detail::half<V>()), e);
    }
};
// Paper eq. 3, truncation toward zero (AP_TRN_ZERO).
struct zero
{
    static constexpr std::string_view name = "zero";
    template <class V>
    static V apply(V const& t, V const&) noexcept
    {
        return t;
    }
};
// Paper eq. 4, floor (AP_TRN): drops the low bits of a two's complement word.
struct down
{
    static constexpr std::string_view name = "down";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        return t - detail::one_if<V>(e < V(detail::value_type_t<V>(0)));
    }
};
// Ceiling.
struct up
{
    static constexpr std::string_view name = "up";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
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
    template <class V>
    static V apply(V const& t, V const& e, V const& u) noexcept
    {
        return t + detail::vcopysign(detail::one_if<V>(detail::vabs(e) > u), e);
    }
};

} // namespace rounding

template <class R>
inline constexpr bool is_stochastic_rounding_v = std::is_same_v<R, rounding::stochastic>;

template <class R>
concept RoundingPolicy = requires { R::name; };

// Runtime names of the policies, for formats chosen at run time.
enum class rounding_mode : std::uint8_t
{
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

namespace detail {
// Calls f with the policy tag of a runtime mode (one switch, outside any loop).
template <class F>
decltype(auto) visit_rounding(rounding_mode m, F&& f)
{
    switch (m) {
    case rounding_mode::nearest: return f(rounding::nearest{});
    case rounding_mode::nearest_even: return f(rounding::nearest_even{});
    case rounding_mode::nearest_up: return f(rounding::nearest_up{});
    case rounding_mode::nearest_down: return f(rounding::nearest_down{});
    case rounding_mode::nearest_zero: return f(rounding::nearest_zero{});
    case rounding_mode::zero: return f(rounding::zero{});
    case rounding_mode::down: return f(rounding::down{});
    case rounding_mode::up: return f(rounding::up{});
    case rounding_mode::stochastic: break;
    }
    return f(rounding::stochastic{});
}
} // namespace detail

template <class R>
constexpr rounding_mode rounding_mode_of() noexcept
{
    if constexpr (std::is_same_v<R, rounding::nearest>) return rounding_mode::nearest;
    else if constexpr (std::is_same_v<R, rounding::nearest_even>) return rounding_mode::nearest_even;
    else if constexpr (std::is_same_v<R, rounding::nearest_up>) return rounding_mode::nearest_up;
    else if constexpr (std::is_same_v<R, rounding::nearest_down>) return rounding_mode::nearest_down;
    else if constexpr (std::is_same_v<R, rounding::nearest_zero>) return rounding_mode::nearest_zero;
    else if constexpr (std::is_same_v<R, rounding::zero>) return rounding_mode::zero;
    else if constexpr (std::is_same_v<R, rounding::down>) return rounding_mode::down;
    else if constexpr (std::is_same_v<R, rounding::up>) return rounding_mode::up;
    else return rounding_mode::stochastic;
}

constexpr std::string_view to_string(rounding_mode m) noexcept
{
    constexpr std::string_view names[] = {"nearest", "nearest_even", "nearest_up", "nearest_down", "nearest_zero",
                                          "zero",    "down",         "up",         "stochastic"};
    return names[static_cast<int>(m)];
}

} // namespace tensorquant

// Identity, binary, ternary and sparse (threshold) quantizers (SPEC 1.2).
// Parameters given as double are converted to T (round to nearest) before use.
// Special values: NaN stays NaN everywhere; +-inf maps to +-m (binary, ternary) and is
// kept (sparse). Statistics (mean |x|) ignore non-finite elements.
#pragma once

#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../detail/statistics.hpp"
#include "../detail/vector_ops.hpp"

#include <cmath>
#include <span>
#include <string>

namespace tensorquant {

namespace detail {
inline void check_non_negative(char const* what, double v)
{
    if (!(v >= 0) || !std::isfinite(v))
        throw format_error(std::string(what) + " must be finite and >= 0, got " + std::to_string(v));
}

template <class T>
struct identity_kernel
{
    T operator()(T x) const noexcept { return x; }
    template <class A>
    xsimd::batch<T, A> operator()(xsimd::batch<T, A> const& x) const noexcept { return x; }
};

// +m for x >= 0 (-0 included), -m for x < 0.
template <class T>
struct binary_kernel : kernel_calls<binary_kernel<T>, T, false>
{
    T m;
    template <class V>
    V apply(V const& x, V const&) const noexcept
    {
        return vselect(x < V(T(0)), V(-m), vselect(x >= V(T(0)), V(m), x));
    }
};

// BinaryConnect: +m with probability clip((x + 1) / 2, 0, 1). With u on the generator's
// grid that is exactly x > 2u - 1 (both sides exact).
template <class T>
struct binary_stochastic_kernel : kernel_calls<binary_stochastic_kernel<T>, T, true>
{
    T m;
    counter_rng rng;
    template <class V>
    V apply(V const& x, V const& u) const noexcept
    {
        V y = vselect(x > u + u - V(T(1)), V(m), V(-m));
        return vselect(visnan(x), x, y);
    }
};

// +m where x > thr, -m where x < -thr, else +0.
template <class T>
struct ternary_kernel : kernel_calls<ternary_kernel<T>, T, false>
{
    T thr;
    T m;
    template <class V>
    V apply(V const& x, V const&) const noexcept
    {
        return vselect(vabs(x) > V(thr), vcopysign(V(m), x), x * V(T(0)) + V(T(0)));
    }
};

// x where |x| > thr, else +0.
template <class T>
struct sparse_kernel : kernel_calls<sparse_kernel<T>, T, false>
{
    T thr;
    template <class V>
    V apply(V const& x, V const&) const noexcept
    {
        return vselect(vabs(x) > V(thr), x, x * V(T(0)) + V(T(0)));
    }
};
} // namespace detail

struct identity : detail::descriptor_base<identity>
{
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const { return fn(detail::identity_kernel<T>{}); }
};

// Binary with a fixed magnitude m.
struct binary : detail::descriptor_base<binary>
{
    double magnitude = 1.0;
    binary() = default;
    explicit binary(double m) : magnitude(m) { detail::check_non_negative("binary magnitude", m); }
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const { return fn(detail::binary_kernel<T>{{}, static_cast<T>(magnitude)}); }
};

// Binary with m = mean |x| over the tensor (XNOR-Net).
struct binary_mean
{
    template <std::floating_point T>
    detail::binary_kernel<T> prepare(std::span<T const> x) const noexcept
    {
        return {{}, static_cast<T>(detail::sum_abs_above(x).mean())};
    }
};

// Stochastic binarization (BinaryConnect).
struct binary_stochastic : detail::descriptor_base<binary_stochastic>
{
    double magnitude = 1.0;
    rng_key key{};
    binary_stochastic() = default;
    explicit binary_stochastic(double m, rng_key k = {}) : magnitude(m), key(k)
    {
        detail::check_non_negative("binary magnitude", m);
    }
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::binary_stochastic_kernel<T>{{}, static_cast<T>(magnitude), key});
    }
};

// Ternary with fixed threshold T and magnitude m.
struct ternary : detail::descriptor_base<ternary>
{
    double threshold = 0.5;
    double magnitude = 1.0;
    ternary() = default;
    ternary(double thr, double m) : threshold(thr), magnitude(m)
    {
        detail::check_non_negative("ternary threshold", thr);
        detail::check_non_negative("ternary magnitude", m);
    }
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::ternary_kernel<T>{{}, static_cast<T>(threshold), static_cast<T>(magnitude)});
    }
};

// Ternary weight networks: T = 0.7 mean |x|, m = mean |x| over |x| > T (0 if none).
struct ternary_twn
{
    double threshold_factor = 0.7;
    template <std::floating_point T>
    detail::ternary_kernel<T> prepare(std::span<T const> x) const noexcept
    {
        const T thr = static_cast<T>(threshold_factor * detail::sum_abs_above(x).mean());
        return {{}, thr, static_cast<T>(detail::sum_abs_above(x, double(thr)).mean())};
    }
};

// Keeps x where |x| > threshold, else 0 (TensorQuant's "sparse").
struct sparse : detail::descriptor_base<sparse>
{
    double threshold = 0.0;
    sparse() = default;
    explicit sparse(double thr) : threshold(thr) { detail::check_non_negative("sparse threshold", thr); }
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const { return fn(detail::sparse_kernel<T>{{}, static_cast<T>(threshold)}); }
};

} // namespace tensorquant

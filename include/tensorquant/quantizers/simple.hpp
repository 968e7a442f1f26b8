// Identity, binary, ternary and sparse (threshold) quantizers (docs/reference.md §1.2).
// Parameters given as double are converted to T (round to nearest) before use.
// Special values: NaN stays NaN everywhere; +-inf maps to +-m (binary, and ternary
// whenever the threshold is finite) and is kept (sparse). Statistics (mean |x|) ignore
// non-finite elements and are always finite: a sum of |x| that would overflow is taken
// again scaled by 2^-64 (detail/statistics.hpp).
#pragma once

#include "../config.hpp"

#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/spec.hpp"
#include "../detail/statistics.hpp"
#include "../detail/vector_ops.hpp"

#include <array>
#include <cmath>
#include <span>
#include <string>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {
// v itself, with -0 made +0 (so no result is -0 because a parameter was spelled "-0").
inline double non_negative(char const* what, double v)
{
    if (!(v >= 0) || !std::isfinite(v))
        throw format_error(std::string(what) + " must be finite and >= 0, got " + std::to_string(v));
    return v + 0.0;
}

// A magnitude as a T: it must be finite there (1e100 is a double magnitude, not a float
// one), or the results would be infinities the format does not have.
template <class T>
T magnitude_in(double m)
{
    const T t = static_cast<T>(m);
    if (!std::isfinite(t))
        throw format_error("magnitude " + std::to_string(m) + " is beyond the range of " +
                           (sizeof(T) == 4 ? "float" : "double"));
    return t;
}

// +0, or x itself where x is NaN (an infinity below the threshold gives +0, not inf * 0).
template <class V>
inline V zero_or_nan(V const& x) noexcept
{
    return vselect(visnan(x), x, V(value_type_t<V>(0)));
}

template <class T>
struct identity_kernel
{
    T operator()(T x) const noexcept { return x; }
    template <class A>
    xsimd::batch<T, A> operator()(xsimd::batch<T, A> const& x) const noexcept
    {
        return x;
    }
};

// +m for x >= 0 (-0 included), -m for x < 0. -m is computed as 0 - m, so a magnitude of
// 0 (binary,0; or the mean of an all-zero tensor) gives +0, never -0.
template <class T>
struct binary_kernel : kernel_calls<binary_kernel<T>, T, false>
{
    T m;
    template <class V>
    V apply(V const& x, V const&) const noexcept
    {
        return vselect(x < V(T(0)), V(T(0) - m), vselect(x >= V(T(0)), V(m), x));
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
        V y = vselect(x > u + u - V(T(1)), V(m), V(T(0) - m));
        return vselect(visnan(x), x, y);
    }
};

// +m where x > thr, -m (as 0 - m: +0 when m = 0) where x < -thr, else +0.
template <class T>
struct ternary_kernel : kernel_calls<ternary_kernel<T>, T, false>
{
    T thr;
    T m;
    template <class V>
    V apply(V const& x, V const&) const noexcept
    {
        return vselect(vabs(x) > V(thr), vselect(x < V(T(0)), V(T(0) - m), V(m)), zero_or_nan(x));
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
        return vselect(vabs(x) > V(thr), x, zero_or_nan(x));
    }
};
} // namespace detail

struct identity : detail::descriptor_base<identity>
{
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::identity_kernel<T>{});
    }

    static constexpr std::string_view form = "identity | none";
    static constexpr std::array<std::string_view, 1> examples{"identity"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "identity" || r.kind() == "none"; }
    static identity parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(1, "identity");
        return {};
    }
    std::string to_string() const { return "identity"; }
};

// Binary with a fixed magnitude m.
struct binary : detail::descriptor_base<binary>
{
    double magnitude = 1.0;
    binary() = default;
    explicit binary(double m) : magnitude(detail::non_negative("binary magnitude", m)) {}
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::binary_kernel<T>{{}, detail::magnitude_in<T>(magnitude)});
    }

    static constexpr std::string_view form = "binary,m";
    static constexpr std::array<std::string_view, 1> examples{"binary,0.5"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "binary" && r.size() > 1; }
    static binary parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(2, "binary[,m]");
        const double m = r.number(1, "magnitude m");
        return r.build([&] { return binary(m); });
    }
    std::string to_string() const { return "binary," + detail::format_number(magnitude); }
    std::pair<double, double> range() const noexcept { return {-magnitude, magnitude}; }
};

// Binary with m = mean |x| over the tensor (XNOR-Net).
struct binary_mean
{
    template <class Arch = xsimd::default_arch, std::floating_point T>
    detail::binary_kernel<T> prepare(std::span<T const> x) const noexcept
    {
        return {{}, static_cast<T>(detail::sum_abs_above<Arch>(x).mean())};
    }

    static constexpr std::string_view form = "binary";
    static constexpr std::array<std::string_view, 1> examples{"binary"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "binary" && r.size() == 1; }
    static binary_mean parse(detail::spec_reader const&, rng_key) { return {}; }
    std::string to_string() const { return "binary"; }
};

// Stochastic binarization (BinaryConnect).
struct binary_stochastic : detail::descriptor_base<binary_stochastic>
{
    double magnitude = 1.0;
    rng_key key{};
    binary_stochastic() = default;
    explicit binary_stochastic(double m, rng_key k = {})
        : magnitude(detail::non_negative("binary magnitude", m)), key(k)
    {}
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::binary_stochastic_kernel<T>{{}, detail::magnitude_in<T>(magnitude), key});
    }

    static constexpr std::string_view form = "binary_stochastic[,m]";
    static constexpr std::array<std::string_view, 2> examples{"binary_stochastic", "binary_stochastic,0.25"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "binary_stochastic"; }
    static binary_stochastic parse(detail::spec_reader const& r, rng_key key)
    {
        r.at_most(2, "binary_stochastic[,m]");
        const double m = r.size() == 2 ? r.number(1, "magnitude m") : 1.0;
        return r.build([&] { return binary_stochastic(m, key); });
    }
    std::string to_string() const
    {
        return magnitude == 1.0 ? "binary_stochastic" : "binary_stochastic," + detail::format_number(magnitude);
    }
    std::pair<double, double> range() const noexcept { return {-magnitude, magnitude}; }
};

// Ternary with fixed threshold T and magnitude m.
struct ternary : detail::descriptor_base<ternary>
{
    double threshold = 0.5;
    double magnitude = 1.0;
    ternary() = default;
    ternary(double thr, double m)
        : threshold(detail::non_negative("ternary threshold", thr)),
          magnitude(detail::non_negative("ternary magnitude", m))
    {}
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::ternary_kernel<T>{{}, static_cast<T>(threshold), detail::magnitude_in<T>(magnitude)});
    }

    static constexpr std::string_view form = "ternary,T,m";
    static constexpr std::array<std::string_view, 1> examples{"ternary,0.4,1.5"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "ternary" && r.size() > 1; }
    static ternary parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(3, "ternary[,T,m]");
        if (r.size() != 3) r.fail("fixed ternary needs a threshold and a magnitude, as \"ternary,T,m\"");
        const double t = r.number(1, "threshold T"), m = r.number(2, "magnitude m");
        return r.build([&] { return ternary(t, m); });
    }
    std::string to_string() const
    {
        return "ternary," + detail::format_number(threshold) + "," + detail::format_number(magnitude);
    }
    std::pair<double, double> range() const noexcept { return {-magnitude, magnitude}; }
};

// Ternary weight networks: T = 0.7 mean |x|, m = mean |x| over |x| > T (0 if none).
struct ternary_twn
{
    static constexpr double default_factor = 0.7;
    double threshold_factor = default_factor;
    template <class Arch = xsimd::default_arch, std::floating_point T>
    detail::ternary_kernel<T> prepare(std::span<T const> x) const noexcept
    {
        const T thr = static_cast<T>(threshold_factor * detail::sum_abs_above<Arch>(x).mean());
        return {{}, thr, static_cast<T>(detail::sum_abs_above<Arch>(x, double(thr)).mean())};
    }

    static constexpr std::string_view form = "ternary | ternary_twn,factor";
    static constexpr std::array<std::string_view, 2> examples{"ternary", "ternary_twn,0.5"};
    static bool accepts(detail::spec_reader const& r)
    {
        return (r.kind() == "ternary" && r.size() == 1) || r.kind() == "ternary_twn";
    }
    static ternary_twn parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(2, "ternary_twn[,factor]");
        ternary_twn q;
        if (r.size() == 2) q.threshold_factor = r.number(1, "threshold factor");
        r.build([&] { return q.threshold_factor = detail::non_negative("TWN threshold factor", q.threshold_factor); });
        return q;
    }
    std::string to_string() const
    {
        return threshold_factor == default_factor ? "ternary"
                                                  : "ternary_twn," + detail::format_number(threshold_factor);
    }
};

// Keeps x where |x| > threshold, else 0 (TensorQuant's "sparse").
struct sparse : detail::descriptor_base<sparse>
{
    double threshold = 0.0;
    sparse() = default;
    explicit sparse(double thr) : threshold(detail::non_negative("sparse threshold", thr)) {}
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return fn(detail::sparse_kernel<T>{{}, static_cast<T>(threshold)});
    }

    static constexpr std::string_view form = "sparse,T";
    static constexpr std::array<std::string_view, 1> examples{"sparse,0.3"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "sparse"; }
    static sparse parse(detail::spec_reader const& r, rng_key)
    {
        r.at_most(2, "sparse,T");
        const double t = r.number(1, "threshold T");
        return r.build([&] { return sparse(t); });
    }
    std::string to_string() const { return "sparse," + detail::format_number(threshold); }
};

} // namespace tensorquant::inline TENSORQUANT_ABI

// Uniform affine quantization with PyTorch's fake-quantize semantics:
//   y = (clamp(round(x * (1/s)) + z, qmin, qmax) - z) * s
// with 1/s and both products rounded in T as PyTorch does, and round() ties-to-even by
// default (any fixed-point rounding policy may be chosen, stochastic included).
// With `divide` (the option "divide"), x / s rounded once replaces x * (1/s): ONNX's
// QuantizeLinear followed by DequantizeLinear, as onnxruntime and ONNX's reference compute
// them. The two differ where x * (1/s) and x / s round to different sides of a tie.
// NaN stays NaN; +-inf clamp to qmax/qmin. Per-channel parameters: affine_per_channel,
// applied along an axis by quantize_per_channel() (apply.hpp).
#pragma once

#include "../config.hpp"

#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/rounding.hpp"
#include "../core/spec.hpp"
#include "../detail/vector_ops.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {

template <class T, class R, bool Divide>
struct affine_kernel : kernel_calls<affine_kernel<T, R, Divide>, T, is_stochastic_rounding_v<R>>
{
    T scale, inv_scale, zero_point, qmin, qmax;
    T above_min, below_max; // qmin - zero_point - 1 and qmax - zero_point + 1 (any T near them will do)
    counter_rng rng;

    template <class V>
    V apply(V const& x, [[maybe_unused]] V const& u) const noexcept
    {
        // clamped to one step beyond the integer range first: x * (1 / scale) can overflow to
        // an infinity, and an infinity has no remainder to round (NaN passes both compares)
        V s = Divide ? V(x / V(scale)) : V(x * V(inv_scale));
        if constexpr (std::is_arithmetic_v<V>) {
            s = s > below_max ? below_max : s;
            s = s < above_min ? above_min : s;
        } else {
            s = xsimd::max(V(above_min), xsimd::min(V(below_max), s));
        }
        V r = round_to_integer<R>(s, u) + V(zero_point);
        if constexpr (std::is_arithmetic_v<V>) {
            r = r > qmax ? V(qmax) : r;
            r = r < qmin ? V(qmin) : r;
        } else {
            r = xsimd::max(V(qmin), xsimd::min(V(qmax), r)); // NaN passes (second operand)
        }
        return (r - V(zero_point)) * V(scale);
    }
};

inline void check_affine_range(int zero_point, int qmin, int qmax)
{
    if (qmin > qmax)
        throw format_error("affine: qmin=" + std::to_string(qmin) + " is above qmax=" + std::to_string(qmax));
    if (zero_point < qmin || zero_point > qmax)
        throw format_error("affine: zero point " + std::to_string(zero_point) + " is outside [qmin, qmax] = [" +
                           std::to_string(qmin) + ", " + std::to_string(qmax) + "]");
}

template <class T, class R, bool Divide>
affine_kernel<T, R, Divide> make_affine_kernel(double scale, int zero_point, int qmin, int qmax, rng_key key)
{
    const T s = static_cast<T>(scale);
    const T inv = T(1) / s;
    if (!(s > 0) || !std::isfinite(s) || !std::isfinite(inv))
        throw format_error("affine: scale " + std::to_string(scale) + " must be positive with a finite inverse in " +
                           (sizeof(T) == 4 ? "float" : "double"));
    constexpr double limit = double(std::int64_t(1) << (std::numeric_limits<T>::digits - 1));
    if (std::abs(double(qmin)) > limit || std::abs(double(qmax)) > limit)
        throw format_error("affine: integer range [" + std::to_string(qmin) + ", " + std::to_string(qmax) +
                           "] is not exact in the storage type");
    return {
        {}, s, inv, T(zero_point), T(qmin), T(qmax), T(double(qmin) - zero_point - 1), T(double(qmax) - zero_point + 1),
        key};
}

} // namespace detail

struct affine : detail::descriptor_base<affine>
{
    double scale = 1.0;
    int zero_point = 0;
    int qmin = -128;
    int qmax = 127;
    rounding_mode rounding = rounding_mode::nearest_even;
    rng_key key{};
    bool divide = false; // x / s (ONNX) instead of x * (1/s) (PyTorch)

    affine() = default;
    affine(double s, int z, int lo, int hi, rounding_mode r = rounding_mode::nearest_even, rng_key k = {},
           bool divide_by_scale = false)
        : scale(s), zero_point(z), qmin(lo), qmax(hi), rounding(r), key(k), divide(divide_by_scale)
    {
        detail::check_affine_range(z, lo, hi);
        if (!(s > 0) || !std::isfinite(s))
            throw format_error("affine: scale " + std::to_string(s) + " must be positive and finite");
    }

    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return detail::visit_rounding(rounding, [&](auto r) -> decltype(auto) {
            if (divide) return fn(detail::make_affine_kernel<T, decltype(r), true>(scale, zero_point, qmin, qmax, key));
            return fn(detail::make_affine_kernel<T, decltype(r), false>(scale, zero_point, qmin, qmax, key));
        });
    }

    static constexpr std::string_view form = "affine,scale,zero_point,qmin,qmax[,rounding][,divide]";
    static constexpr std::array<std::string_view, 3> examples{"affine,0.05,3,-128,127", "affine,0.1,0,0,15,stochastic",
                                                              "affine,0.02,128,0,255,divide"};
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "affine"; }
    static affine parse(detail::spec_reader const& r, rng_key key)
    {
        if (r.size() < 5) r.fail("affine needs scale, zero point, qmin and qmax, as \"" + std::string(form) + "\"");
        r.at_most(7, form);
        const double s = r.number(1, "scale");
        const int z = r.integer(2, "zero point"), lo = r.integer(3, "qmin"), hi = r.integer(4, "qmax");
        std::optional<rounding_mode> rm;
        bool divide_by_scale = false;
        for (std::size_t k = 5; k < r.size(); ++k) {
            if (r[k] == "divide" && !divide_by_scale) {
                divide_by_scale = true;
                continue;
            }
            const auto m = rounding_from_name(r[k]);
            if (!m || rm) r.fail("\"" + std::string(r[k]) + "\" is not a rounding or \"divide\" (or is given twice)");
            rm = *m;
        }
        return r.build(
            [&] { return affine(s, z, lo, hi, rm.value_or(rounding_mode::nearest_even), key, divide_by_scale); });
    }
    // [(qmin - z) s, (qmax - z) s].
    std::pair<double, double> range() const noexcept
    {
        return {(double(qmin) - zero_point) * scale, (double(qmax) - zero_point) * scale};
    }

    std::string to_string() const
    {
        std::string s = "affine," + detail::format_number(scale) + "," + std::to_string(zero_point) + "," +
                        std::to_string(qmin) + "," + std::to_string(qmax);
        if (rounding != rounding_mode::nearest_even) s += "," + std::string(tensorquant::to_string(rounding));
        if (divide) s += ",divide";
        return s;
    }
};

// One scale and zero point per channel along an axis.
struct affine_per_channel
{
    std::vector<double> scales;
    std::vector<int> zero_points;
    int qmin = -128;
    int qmax = 127;
    rounding_mode rounding = rounding_mode::nearest_even;
    rng_key key{};
    bool divide = false;

    affine_per_channel(std::vector<double> s, std::vector<int> z, int lo, int hi,
                       rounding_mode r = rounding_mode::nearest_even, rng_key k = {}, bool divide_by_scale = false)
        : scales(std::move(s)), zero_points(std::move(z)), qmin(lo), qmax(hi), rounding(r), key(k),
          divide(divide_by_scale)
    {
        if (scales.size() != zero_points.size())
            throw format_error("affine_per_channel: " + std::to_string(scales.size()) + " scales but " +
                               std::to_string(zero_points.size()) + " zero points");
        for (std::size_t c = 0; c < scales.size(); ++c) affine(scales[c], zero_points[c], qmin, qmax, r, k);
    }

    std::size_t channels() const noexcept { return scales.size(); }
    affine channel(std::size_t c) const { return affine(scales[c], zero_points[c], qmin, qmax, rounding, key, divide); }
};

} // namespace tensorquant::inline TENSORQUANT_ABI

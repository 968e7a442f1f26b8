// What instrumentation measures on a quantized tensor (off by default): how many reference
// values lie outside the range of a fixed-point format, and the signal-to-quantization-
// noise ratio.
#pragma once

#include "../config.hpp"

#include "../parse.hpp"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// saturated counts reference values outside the range of a fixed-point format (-1 for
// other quantizers); sqnr_db = 10 log10(sum ref^2 / sum (ref - quantized)^2), +inf when
// they are equal. For intrinsic layers the reference is the same layer computed in float.
struct tensor_stats
{
    std::string layer;
    std::string tensor; // "weights", "bias", ..., "output (extrinsic)", "output (intrinsic)"
    std::size_t count = 0;
    long long saturated = -1;
    double sqnr_db = 0;
    double signal = 0, noise = 0; // sum ref^2 and sum (ref - quantized)^2

    // The statistics of this tensor and another part of it (the same tensor over other
    // samples) as one.
    void merge(tensor_stats const& o)
    {
        count += o.count;
        if (saturated >= 0 && o.saturated >= 0) saturated += o.saturated;
        signal += o.signal;
        noise += o.noise;
        sqnr_db = noise == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(signal / noise);
    }
};

// [lowest, max] of a fixed-point quantizer, or nothing for the others.
inline std::optional<std::pair<double, double>> saturation_range(any_quantizer const& q)
{
    if (auto const* f = std::get_if<fixed_point_rt>(&q.get())) return f->range();
    return std::nullopt;
}

inline tensor_stats measure(std::string layer, std::string tensor, float const* ref, float const* q, std::size_t n,
                            any_quantizer const& quantizer)
{
    tensor_stats s{std::move(layer), std::move(tensor), n, -1, 0, 0, 0};
    double signal = 0, noise = 0;
    for (std::size_t i = 0; i < n; ++i) {
        signal += double(ref[i]) * ref[i];
        noise += (double(ref[i]) - q[i]) * (double(ref[i]) - q[i]);
    }
    s.signal = signal;
    s.noise = noise;
    s.sqnr_db = noise == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(signal / noise);
    if (auto range = saturation_range(quantizer)) {
        const auto [lo, hi] = *range;
        s.saturated = 0;
        for (std::size_t i = 0; i < n; ++i) s.saturated += (ref[i] > hi || ref[i] < lo) ? 1 : 0;
    }
    return s;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn

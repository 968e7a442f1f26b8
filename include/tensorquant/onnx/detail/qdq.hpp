// ONNX's linear quantization (QuantizeLinear / DequantizeLinear) as the importer holds it:
// the scales, zero points and integer range of one quantization point, per tensor or per
// axis, and the two conversions exactly as ONNX defines them in float32:
//   QuantizeLinear:   q = saturate(round_half_to_even(x / scale) + zero_point)
//   DequantizeLinear: x = (q - zero_point) * scale
// (onnxruntime subtracts in integers before converting to float; for int8 and uint8 the
// difference is exact either way, and so it is for int32 with a zero point of 0, the
// exporters' only int32 case, a bias).
#pragma once

#include "../../config.hpp"

#include "../../quantizers/affine.hpp"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx {

struct linear_quantization
{
    std::vector<float> scales;             // one (per tensor) or one per index of `axis`
    std::vector<std::int64_t> zero_points; // as many as scales
    std::int64_t qmin = 0, qmax = 255;
    std::int64_t axis = 1; // normalised; meaningful when per axis
    int element_type = ::onnx::TensorProto::UINT8;

    bool per_tensor() const noexcept { return scales.size() == 1; }

    // The channel of element i of a row-major tensor of the given shape.
    std::size_t channel(std::size_t i, std::vector<std::int64_t> const& shape) const noexcept
    {
        if (per_tensor()) return 0;
        std::size_t inner = 1;
        for (std::size_t d = std::size_t(axis) + 1; d < shape.size(); ++d) inner *= std::size_t(shape[d]);
        return (i / inner) % scales.size();
    }

    // QuantizeLinear in float32: the quotient rounded once, then to the nearest integer with
    // ties to even (the default floating-point environment's nearbyint), then saturated.
    // NaN has no code (ONNX leaves it undefined); here it gives the zero point.
    double encode(float x, std::size_t c) const noexcept
    {
        const float v = x / scales[c];
        if (std::isnan(v)) return double(zero_points[c]);
        const double r = std::nearbyint(double(v)) + double(zero_points[c]);
        return r < double(qmin) ? double(qmin) : r > double(qmax) ? double(qmax) : r;
    }
    // DequantizeLinear in float32.
    float decode(double q, std::size_t c) const noexcept
    {
        return float(double(std::int64_t(q) - zero_points[c])) * scales[c];
    }

    // The library's quantizer of one quantization point followed by its dequantization
    // (per tensor): the affine quantizer with ONNX's division.
    affine as_affine() const
    {
        return affine(double(scales[0]), int(zero_points[0]), int(qmin), int(qmax), rounding_mode::nearest_even, {},
                      true);
    }

    bool operator==(linear_quantization const&) const = default;
};

namespace detail {

// The integer range of a QDQ element type, or false for a type ONNX's opsets 10 to 17 do
// not quantize to.
inline bool integer_range(int element_type, std::int64_t& lo, std::int64_t& hi)
{
    switch (element_type) {
    case ::onnx::TensorProto::INT8:
        lo = -128, hi = 127;
        return true;
    case ::onnx::TensorProto::UINT8:
        lo = 0, hi = 255;
        return true;
    case ::onnx::TensorProto::INT32:
        lo = std::numeric_limits<std::int32_t>::min(), hi = std::numeric_limits<std::int32_t>::max();
        return true;
    default:
        return false;
    }
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI::onnx

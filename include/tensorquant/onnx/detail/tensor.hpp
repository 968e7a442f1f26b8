// ONNX TensorProto to float or integer arrays: the element types the importer reads
// (float32; float16 and float64 converted to float32; the integer types of shapes and of
// QDQ zero points; bool), from raw_data or the typed fields. Sizes are checked before
// anything is allocated; external data is refused by name.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx {

// A constant of the model (an initializer, a Constant node, a bound input, or a value the
// importer folded), in ONNX's layout.
struct constant
{
    std::vector<std::int64_t> shape;
    std::vector<double> values; // every element type the importer reads is exact in double
    int element_type = 0;       // ::onnx::TensorProto_DataType
    // Shapes that follow the batch: empty, or per element 0 (the value) or k > 0 (k N, N the
    // batch size, which the model leaves open).
    std::vector<std::int64_t> per_batch;
    // A float32 initializer as the model stores it (little-endian bytes), while values is
    // still empty: the importer widens it to values only where an operator reads it as a
    // constant, so the large weights go straight into a layer's float storage (float_at).
    // It views the model being imported and never outlives the import.
    std::string_view float32_data;

    std::size_t size() const noexcept { return widened() ? values.size() : float32_data.size() / 4; }
    bool widened() const noexcept { return float32_data.empty(); }
    // Element i as float: exact for every float32 constant, rounded for the others.
    float float_at(std::size_t i) const noexcept
    {
        if (widened()) return float(values[i]);
        std::uint32_t u;
        std::memcpy(&u, float32_data.data() + 4 * i, 4);
        return std::bit_cast<float>(u);
    }
    // values filled from float32_data.
    void widen()
    {
        if (widened()) return;
        values.resize(size());
        for (std::size_t i = 0; i < values.size(); ++i) values[i] = double(float_at(i));
        float32_data = {};
    }
    bool symbolic() const noexcept
    {
        return std::any_of(per_batch.begin(), per_batch.end(), [](std::int64_t k) { return k != 0; });
    }
    std::int64_t batch_factor(std::size_t i) const noexcept { return per_batch.empty() ? 0 : per_batch[i]; }
};

namespace detail {

inline std::string element_type_name(int t)
{
    if (::onnx::TensorProto_DataType_IsValid(t))
        return ::onnx::TensorProto_DataType_Name(static_cast<::onnx::TensorProto_DataType>(t));
    return "type " + std::to_string(t);
}

// IEEE binary16 bits to float, exactly (every binary16 value is a float).
inline float half_to_float(std::uint16_t h) noexcept
{
    const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    float v;
    if (exponent == 0x1f)
        v = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else if (exponent == 0)
        v = std::ldexp(float(mantissa), -24);
    else
        v = std::ldexp(float(mantissa | 0x400), exponent - 25);
    return sign ? -v : v;
}

// A double rounded to binary16 (nearest, ties to even), as a double.
inline double round_to_half(double v) noexcept
{
    if (std::isnan(v) || std::isinf(v) || v == 0) return v;
    const double a = std::fabs(v);
    if (a >= 65520.0) return std::copysign(std::numeric_limits<double>::infinity(), v);
    int e = std::ilogb(a);
    if (e < -14) e = -14; // subnormals: the grid of 2^-24
    const double step = std::ldexp(1.0, e - 10);
    return std::copysign(std::nearbyint(a / step) * step, v);
}

template <class U>
U load(unsigned char const* p) noexcept
{
    U u;
    std::memcpy(&u, p, sizeof u);
    return u;
}

inline std::size_t element_count(std::vector<std::int64_t> const& shape, std::string const& what)
{
    std::size_t n = 1;
    for (auto d : shape) {
        if (d < 0) throw file_error(what + ": negative dimension " + std::to_string(d));
        if (d != 0 && n > (std::size_t(1) << 40) / std::size_t(d)) throw file_error(what + ": more than 2^40 elements");
        n *= std::size_t(d);
    }
    return n;
}

// The element types the importer reads: their width in raw_data (little-endian, as is
// every machine this library targets) and the value of one element there.
struct element_kind
{
    int type;
    std::size_t width;
    double (*from_raw)(unsigned char const*);
};
static_assert(std::endian::native == std::endian::little);
inline constexpr std::array element_kinds{
    element_kind{::onnx::TensorProto::FLOAT, 4,
                 [](unsigned char const* p) { return double(std::bit_cast<float>(load<std::uint32_t>(p))); }},
    element_kind{::onnx::TensorProto::DOUBLE, 8,
                 [](unsigned char const* p) { return std::bit_cast<double>(load<std::uint64_t>(p)); }},
    element_kind{::onnx::TensorProto::FLOAT16, 2,
                 [](unsigned char const* p) { return double(half_to_float(load<std::uint16_t>(p))); }},
    element_kind{::onnx::TensorProto::BFLOAT16, 2,
                 [](unsigned char const* p) {
                     return double(std::bit_cast<float>(std::uint32_t(load<std::uint16_t>(p)) << 16));
                 }},
    element_kind{::onnx::TensorProto::INT8, 1, [](unsigned char const* p) { return double(std::int8_t(*p)); }},
    element_kind{::onnx::TensorProto::UINT8, 1, [](unsigned char const* p) { return double(*p); }},
    element_kind{::onnx::TensorProto::BOOL, 1, [](unsigned char const* p) { return double(*p != 0); }},
    element_kind{::onnx::TensorProto::INT16, 2,
                 [](unsigned char const* p) { return double(std::int16_t(load<std::uint16_t>(p))); }},
    element_kind{::onnx::TensorProto::UINT16, 2, [](unsigned char const* p) { return double(load<std::uint16_t>(p)); }},
    element_kind{::onnx::TensorProto::INT32, 4,
                 [](unsigned char const* p) { return double(std::int32_t(load<std::uint32_t>(p))); }},
    element_kind{::onnx::TensorProto::INT64, 8,
                 [](unsigned char const* p) { return double(std::int64_t(load<std::uint64_t>(p))); }},
    element_kind{::onnx::TensorProto::UINT32, 4, [](unsigned char const* p) { return double(load<std::uint32_t>(p)); }},
    element_kind{::onnx::TensorProto::UINT64, 8, [](unsigned char const* p) { return double(load<std::uint64_t>(p)); }},
};

inline bool is_integer_type(int t)
{
    using TP = ::onnx::TensorProto;
    return t == TP::INT8 || t == TP::UINT8 || t == TP::INT16 || t == TP::UINT16 || t == TP::INT32 || t == TP::INT64 ||
           t == TP::UINT32 || t == TP::UINT64 || t == TP::BOOL;
}
inline bool is_float_type(int t)
{
    using TP = ::onnx::TensorProto;
    return t == TP::FLOAT || t == TP::DOUBLE || t == TP::FLOAT16 || t == TP::BFLOAT16;
}

// A double rounded to bfloat16 (float first, then its top 16 bits, nearest even), as a double.
inline double round_to_bfloat16(double v) noexcept
{
    const float f = float(v);
    if (std::isnan(f)) return v;
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return double(std::bit_cast<float>(u & 0xffff0000u));
}

// v as an element of type t holds it: floats rounded to the type, integers truncated toward
// zero (ONNX's Cast), bools 0 or 1.
inline double as_element(double v, int t)
{
    using TP = ::onnx::TensorProto;
    switch (t) {
    case TP::FLOAT:
        return double(float(v));
    case TP::FLOAT16:
        return round_to_half(v);
    case TP::BFLOAT16:
        return round_to_bfloat16(v);
    case TP::DOUBLE:
        return v;
    case TP::BOOL:
        return v != 0 ? 1.0 : 0.0;
    default:
        return std::isfinite(v) ? std::trunc(v) : 0.0;
    }
}

// The tensor's values; what names it in errors ("initializer 'conv1.weight'"). With
// keep_float32, float32 raw data is only viewed (constant::float32_data): t must outlive it.
inline constant to_constant(::onnx::TensorProto const& t, std::string const& what, bool keep_float32 = false)
{
    constant c;
    c.shape.assign(t.dims().begin(), t.dims().end());
    c.element_type = t.data_type();
    const std::size_t n = element_count(c.shape, what);
    if (t.data_location() == ::onnx::TensorProto_DataLocation_EXTERNAL)
        throw unsupported_error(what + ": the data is stored in an external file, which the importer does not read "
                                       "(save the model with its weights inside)");
    using TP = ::onnx::TensorProto;
    const auto kind = std::find_if(element_kinds.begin(), element_kinds.end(),
                                   [&](element_kind const& k) { return k.type == t.data_type(); });
    if (kind == element_kinds.end())
        throw unsupported_error(what + ": element type " + element_type_name(t.data_type()) +
                                " is not supported (float, float16, double, bool and the integer types are)");
    const std::size_t width = kind->width;
    auto fail_count = [&](std::size_t got) {
        throw file_error(what + ": the shape holds " + std::to_string(n) + " elements but the data has " +
                         std::to_string(got));
    };
    if (t.has_raw_data()) {
        auto const& raw = t.raw_data();
        if (raw.size() != n * width) fail_count(raw.size() / width);
        if (keep_float32 && t.data_type() == TP::FLOAT) {
            c.float32_data = raw;
            return c;
        }
        c.values.resize(n);
        auto const* p = reinterpret_cast<unsigned char const*>(raw.data());
        for (std::size_t i = 0; i < n; ++i, p += width) c.values[i] = kind->from_raw(p);
        return c;
    }
    auto take = [&](auto const& field, auto convert) {
        if (std::size_t(field.size()) != n) fail_count(std::size_t(field.size()));
        c.values.reserve(n);
        for (auto v : field) c.values.push_back(convert(v));
    };
    switch (t.data_type()) {
    case TP::FLOAT:
        take(t.float_data(), [](float v) { return double(v); });
        break;
    case TP::DOUBLE:
        take(t.double_data(), [](double v) { return v; });
        break;
    case TP::INT64:
        take(t.int64_data(), [](std::int64_t v) { return double(v); });
        break;
    case TP::UINT32:
    case TP::UINT64:
        take(t.uint64_data(), [](std::uint64_t v) { return double(v); });
        break;
    case TP::FLOAT16: // bits in int32_data
        take(t.int32_data(), [](std::int32_t v) { return double(half_to_float(std::uint16_t(v))); });
        break;
    case TP::BFLOAT16:
        take(t.int32_data(),
             [](std::int32_t v) { return double(std::bit_cast<float>(std::uint32_t(std::uint16_t(v)) << 16)); });
        break;
    case TP::BOOL:
        take(t.int32_data(), [](std::int32_t v) { return v != 0 ? 1.0 : 0.0; });
        break;
    default:
        take(t.int32_data(), [](std::int32_t v) { return double(v); });
        break;
    }
    return c;
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI::onnx

// ONNX TensorProto to float or integer arrays: the element types the importer reads
// (float32; float16 and float64 converted to float32; the integer types of shapes and of
// QDQ zero points), from raw_data or the typed fields. Sizes are checked before anything
// is allocated; external data is refused by name.
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
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx {

// A constant of the model (an initializer, a Constant node, a bound input), NCHW as ONNX
// keeps it.
struct constant
{
    std::vector<std::int64_t> shape;
    std::vector<double> values; // every element type the importer reads is exact in double
    int element_type = 0;       // ::onnx::TensorProto_DataType

    std::size_t size() const noexcept { return values.size(); }
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
};

// The tensor's values; what names it in errors ("initializer 'conv1.weight'").
inline constant to_constant(::onnx::TensorProto const& t, std::string const& what)
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
                                " is not supported (float, float16, double and the integer types are)");
    const std::size_t width = kind->width;
    auto fail_count = [&](std::size_t got) {
        throw file_error(what + ": the shape holds " + std::to_string(n) + " elements but the data has " +
                         std::to_string(got));
    };
    if (t.has_raw_data()) {
        auto const& raw = t.raw_data();
        if (raw.size() != n * width) fail_count(raw.size() / width);
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
    case TP::FLOAT16: // bits in int32_data
        take(t.int32_data(), [](std::int32_t v) { return double(half_to_float(std::uint16_t(v))); });
        break;
    default:
        take(t.int32_data(), [](std::int32_t v) { return double(v); });
        break;
    }
    return c;
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI::onnx

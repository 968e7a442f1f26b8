// QDQ: QuantizeLinear and DequantizeLinear. A quantization point on a computed tensor
// becomes the extrinsic quantizer of the layer giving it (load.hpp sets the map);
// constants (weights, biases) are quantized and dequantized at import.
#pragma once

#include "../../config.hpp"

#include "importer.hpp"
#include "qdq.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// The scale, zero point and axis of a QuantizeLinear or DequantizeLinear over a tensor of
// the given shape; `codes_type` is the integer type when the zero point does not say (0:
// uint8, QuantizeLinear's default).
inline linear_quantization qdq_parameters(importer& im, std::vector<std::int64_t> const& shape, int codes_type)
{
    linear_quantization q;
    auto const& scale = im.input_constant(1, "scale");
    if (scale.element_type != ::onnx::TensorProto::FLOAT)
        im.unsupported("the scale has element type " + element_type_name(scale.element_type) + "; only FLOAT is");
    q.element_type = codes_type ? codes_type : int(::onnx::TensorProto::UINT8);
    std::vector<double> zero(scale.size(), 0.0);
    if (im.has_input(2)) {
        auto const& z = im.input_constant(2, "zero point");
        if (z.size() != scale.size())
            im.malformed("the zero point has " + std::to_string(z.size()) + " values and the scale " +
                         std::to_string(scale.size()));
        if (codes_type && z.element_type != codes_type)
            im.malformed("the zero point is " + element_type_name(z.element_type) + " and the codes " +
                         element_type_name(codes_type));
        q.element_type = z.element_type;
        zero = z.values;
    }
    if (!integer_range(q.element_type, q.qmin, q.qmax) ||
        (q.element_type == ::onnx::TensorProto::INT32 && im.node().op_type() == "QuantizeLinear"))
        im.unsupported("codes of element type " + element_type_name(q.element_type) +
                       " are not supported (int8 and uint8; int32 for DequantizeLinear)");
    if (scale.size() == 0) im.malformed("the scale is empty");
    if (scale.size() > 1) {
        if (im.opset() < 13) im.malformed("a scale of more than one value needs opset 13 (per-axis quantization)");
        q.axis = normalized_axis(im, im.attr_int("axis", 1), shape.size());
        if (scale.shape.size() != 1 || shape[std::size_t(q.axis)] != std::int64_t(scale.size()))
            im.malformed("the scale of shape " + shape_text(scale.shape) + " is not one value per index of axis " +
                         std::to_string(q.axis) + " of " + shape_text(shape));
    }
    for (std::size_t c = 0; c < scale.size(); ++c) {
        const float s = float(scale.values[c]);
        if (!(s > 0) || !std::isfinite(s) || !std::isfinite(1.0f / s))
            im.unsupported("the scale " + std::to_string(scale.values[c]) +
                           " is not a positive normal float (the library's affine quantizers need one)");
        if (zero[c] < double(q.qmin) || zero[c] > double(q.qmax))
            im.malformed("the zero point " + std::to_string(zero[c]) + " is outside its type's range");
        q.scales.push_back(s);
        q.zero_points.push_back(std::int64_t(zero[c]));
    }
    return q;
}

inline void convert_quantize_linear(importer& im)
{
    if (im.is_constant(0)) { // a weight: its codes, computed here
        auto const& x = im.input_constant(0, "input");
        const auto q = qdq_parameters(im, x.shape, 0);
        constant codes;
        codes.shape = x.shape;
        codes.element_type = q.element_type;
        codes.values.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i)
            codes.values[i] = q.encode(float(x.values[i]), q.channel(i, x.shape));
        return im.set_output_constant(std::move(codes));
    }
    auto v = im.input_any(0, "input");
    if (v.codes || v.integer) im.unsupported("the input already holds integer codes");
    v.codes = qdq_parameters(im, v.shape, 0);
    v.dequantized = false;
    im.set_output(std::move(v));
}

inline void convert_dequantize_linear(importer& im)
{
    if (im.is_constant(0)) { // a weight or bias: its values, computed here
        auto const& x = im.input_constant(0, "input");
        const auto q = qdq_parameters(im, x.shape, x.element_type);
        constant values;
        values.shape = x.shape;
        values.element_type = ::onnx::TensorProto::FLOAT;
        values.values.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (x.values[i] < double(q.qmin) || x.values[i] > double(q.qmax))
                im.malformed("code " + std::to_string(x.values[i]) + " is outside its type's range");
            values.values[i] = double(q.decode(x.values[i], q.channel(i, x.shape)));
        }
        return im.set_output_constant(std::move(values));
    }
    auto const& v = im.input_any(0, "input");
    if (v.integer) { // the model's integer input: decoded where the model takes it
        const auto q = qdq_parameters(im, v.shape, v.integer);
        auto& given = im.input_codes();
        if (given && !(*given == q)) im.unsupported("the integer input is dequantized twice, differently");
        given = q;
        value_info out = v; // the network's input, decoded
        out.integer = 0;
        return im.set_output(std::move(out));
    }
    if (!v.codes) im.unsupported("the input is not integer codes (a QuantizeLinear's output or an integer input)");
    const auto q = qdq_parameters(im, v.shape, v.codes->element_type);
    if (!(q == *v.codes))
        im.unsupported("it dequantizes with other scales or zero points than its QuantizeLinear quantized with " +
                       std::string("(requantization is not supported)"));
    const std::string codes_name = im.input_name(0);
    value_info out = v;
    out.node = im.quantize_output(v.node, q);
    out.codes.reset();
    out.dequantized = true;
    im.values()[codes_name].node = out.node; // a second DequantizeLinear of these codes: the same layer
    im.set_output(std::move(out));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

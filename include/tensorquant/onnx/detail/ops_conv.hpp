// Convolutions and matrix products: Conv and ConvTranspose (2-D, on NHWC), Gemm, MatMul (a
// dense layer when the right operand is a constant matrix, else a matrix-product layer,
// batched and broadcast). Weights go from ONNX's layouts to the layers' at import.
#pragma once

#include "../../config.hpp"

#include "importer.hpp"
#include "ops_elementwise.hpp"
#include "ops_shape.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// ---- shared geometry ------------------------------------------------------------------

struct spatial
{
    std::array<int, 2> kernel{1, 1}, stride{1, 1}, dilation{1, 1};
    std::array<int, 4> pads{0, 0, 0, 0}; // top, bottom, left, right
    std::array<std::int64_t, 2> out{0, 0};
};

inline int small_int(importer const& im, std::int64_t v, std::string_view what)
{
    if (v < 0 || v > (1 << 24)) im.malformed(std::string(what) + " " + std::to_string(v) + " is out of range");
    return int(v);
}

inline std::array<int, 2> pick2(importer const& im, std::string_view name, std::int64_t fallback)
{
    auto v = im.attr_ints(name, {fallback, fallback});
    if (v.size() != 2)
        im.unsupported("attribute '" + std::string(name) + "' has " + std::to_string(v.size()) +
                       " values; only 2-D windows (two values) are supported");
    return {small_int(im, v[0], name), small_int(im, v[1], name)};
}

// Strides, dilations, pads and auto_pad of a Conv or pooling node over an input of h x w,
// as explicit pads; ceil_mode is applied by the pooling converters.
inline spatial window_of(importer const& im, std::array<int, 2> kernel, std::int64_t h, std::int64_t w,
                         bool ceil_mode = false)
{
    spatial s;
    s.kernel = kernel;
    s.stride = pick2(im, "strides", 1);
    s.dilation = pick2(im, "dilations", 1);
    if (s.stride[0] < 1 || s.stride[1] < 1 || s.dilation[0] < 1 || s.dilation[1] < 1)
        im.malformed("strides and dilations must be >= 1");
    if (h < 0 || w < 0) im.unsupported("a window over an axis that follows the batch is not supported");
    const std::string auto_pad = im.attr_string("auto_pad", "NOTSET");
    const std::array<std::int64_t, 2> in{h, w};
    std::array<int, 2> lo{0, 0}, hi{0, 0};
    if (auto_pad == "NOTSET") {
        auto p = im.attr_ints("pads", {0, 0, 0, 0});
        if (p.size() != 4) im.unsupported("attribute 'pads' has " + std::to_string(p.size()) + " values; 2-D needs 4");
        lo = {small_int(im, p[0], "pad"), small_int(im, p[1], "pad")};
        hi = {small_int(im, p[2], "pad"), small_int(im, p[3], "pad")};
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        for (int a = 0; a < 2; ++a) {
            const std::int64_t out = (in[a] + s.stride[a] - 1) / s.stride[a];
            const std::int64_t span = std::int64_t(s.kernel[a] - 1) * s.dilation[a] + 1;
            const std::int64_t total = std::max<std::int64_t>((out - 1) * s.stride[a] + span - in[a], 0);
            const int small = int(total / 2), large = int(total - total / 2);
            lo[a] = auto_pad == "SAME_UPPER" ? small : large; // the odd one at the end for SAME_UPPER
            hi[a] = auto_pad == "SAME_UPPER" ? large : small;
        }
    } else if (auto_pad != "VALID") {
        im.malformed("auto_pad '" + auto_pad + "' is none of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
    }
    for (int a = 0; a < 2; ++a) {
        const std::int64_t span = std::int64_t(s.kernel[a] - 1) * s.dilation[a] + 1;
        const std::int64_t room = in[a] + lo[a] + hi[a] - span;
        if (room < 0)
            im.unsupported("a window of " + std::to_string(span) + " does not fit an input of " +
                           std::to_string(in[a]) + " with its padding");
        s.out[a] = (ceil_mode ? (room + s.stride[a] - 1) / s.stride[a] : room / s.stride[a]) + 1;
        if (ceil_mode && (s.out[a] - 1) * s.stride[a] >= in[a] + lo[a]) --s.out[a]; // a window starting in the end pad
    }
    s.pads = {lo[0], hi[0], lo[1], hi[1]};
    return s;
}

// A 4-D (NCHW) input held as NHWC, with the zero padding a Pad before it held back
// (`pads`: top, bottom, left, right), or none when the caller cannot take it.
inline value_info image_input(importer& im, std::array<int, 4>* pads = nullptr)
{
    auto const& raw = im.input_any(0, "input");
    if (raw.zero_pads && pads && !raw.codes && !raw.integer) {
        *pads = *raw.zero_pads;
        value_info v = raw;
        v.zero_pads.reset();
        im.note_read(0);
        return im.in_layout(v, channels_last_perm(4));
    }
    auto const& v = im.input_value(0, "input");
    if (v.rank() != 4)
        im.unsupported("the input has shape " + shape_text(v.shape) +
                       "; only 4-D (NCHW) images are supported here (2-D windows)");
    return im.in_layout(v, channels_last_perm(4));
}

// ONNX's index of the network's feature r of a [N, F] value: the same, but for a flattened
// NHWC feature map, whose feature r is ONNX's feature c H W + y W + x.
inline std::int64_t onnx_feature(value_info const& v, std::int64_t r)
{
    if (!v.flattened_chw) return r;
    auto [C, H, W] = *v.flattened_chw;
    return (r % C) * H * W + r / C;
}

// ---- converters -----------------------------------------------------------------------

inline void convert_conv(importer& im)
{
    std::array<int, 4> held{0, 0, 0, 0};
    const bool same = im.attr_string("auto_pad", "NOTSET").rfind("SAME", 0) == 0;
    const auto x = image_input(im, same ? nullptr : &held);
    auto const& wt = im.input_weights(1, "weight");
    if (wt.shape.size() != 4)
        im.unsupported("the weight has shape " + shape_text(wt.shape) + "; only 2-D convolutions are supported");
    const std::int64_t c = x.shape[1], m = wt.shape[0], cg = wt.shape[1], kh = wt.shape[2], kw = wt.shape[3];
    const std::int64_t groups = im.attr_int("group", 1);
    if (groups < 1 || c % groups != 0 || m % groups != 0 || cg * groups != c)
        im.malformed("group " + std::to_string(groups) + " does not fit " + std::to_string(c) +
                     " input channels and a weight of shape " + shape_text(wt.shape));
    auto ks = im.attr_ints("kernel_shape", {kh, kw});
    if (ks.size() != 2 || ks[0] != kh || ks[1] != kw)
        im.malformed("kernel_shape does not match the weight's shape " + shape_text(wt.shape));
    auto s = window_of(im, {small_int(im, kh, "kernel"), small_int(im, kw, "kernel")}, x.shape[2] + held[0] + held[1],
                       x.shape[3] + held[2] + held[3]);
    for (int k = 0; k < 4; ++k) s.pads[std::size_t(k)] += held[std::size_t(k)];
    nn::conv2d_layer l;
    l.options.stride = s.stride;
    l.options.dilation = s.dilation;
    l.options.padding = nn::padding_mode::explicit_pads;
    l.options.pads = s.pads;
    l.options.groups = int(groups);
    l.weights = nn::tensor4<float>::from_shape({std::size_t(kh), std::size_t(kw), std::size_t(cg), std::size_t(m)});
    // ONNX's [M, C/group, kH*kW] transposed into the layer's [kH*kW, C/group, M], by blocks
    // of 16 outputs so that both sides stay within a few cache lines and pages
    float* const to = l.weights.data();
    const std::int64_t taps = kh * kw;
    auto transpose = [&](auto const& from) {
        for (std::int64_t o0 = 0; o0 < m; o0 += 16)
            for (std::int64_t i = 0; i < cg; ++i)
                for (std::int64_t t = 0; t < taps; ++t)
                    for (std::int64_t o = o0; o < std::min(m, o0 + 16); ++o)
                        to[std::size_t((t * cg + i) * m + o)] = from(std::size_t((o * cg + i) * taps + t));
    };
    if (wt.widened())
        transpose([&](std::size_t j) { return float(wt.values[j]); });
    else
        transpose([bytes = wt.float32_data.data()](std::size_t j) {
            float f;
            std::memcpy(&f, bytes + 4 * j, 4);
            return f;
        });
    if (im.has_input(2)) {
        auto const& b = im.input_weights(2, "bias");
        if (b.size() != std::size_t(m))
            im.malformed("the bias has " + std::to_string(b.size()) + " values for " + std::to_string(m) + " outputs");
        l.bias = nn::tensor1<float>::from_shape({std::size_t(m)});
        for (std::size_t j = 0; j < b.size(); ++j) l.bias(j) = b.float_at(j);
    }
    im.add(std::move(l), {x.node}, {x.shape[0], m, s.out[0], s.out[1]}, channels_last_perm(4));
}

inline void convert_conv_transpose(importer& im)
{
    const auto x = image_input(im);
    auto const& wt = im.input_constant(1, "weight");
    if (wt.shape.size() != 4)
        im.unsupported("the weight has shape " + shape_text(wt.shape) +
                       "; only 2-D transposed convolutions are supported");
    const std::int64_t c = x.shape[1], mg = wt.shape[1], kh = wt.shape[2], kw = wt.shape[3];
    const std::int64_t groups = im.attr_int("group", 1);
    if (wt.shape[0] != c || groups < 1 || c % groups) im.malformed("the weight does not fit the input's channels");
    const std::int64_t m = mg * groups;
    auto ks = im.attr_ints("kernel_shape", {kh, kw});
    if (ks.size() != 2 || ks[0] != kh || ks[1] != kw) im.malformed("kernel_shape does not match the weight's shape");
    nn::transpose_options o;
    o.stride = pick2(im, "strides", 1);
    o.dilation = pick2(im, "dilations", 1);
    o.output_padding = pick2(im, "output_padding", 0);
    o.groups = int(groups);
    const std::array<std::int64_t, 2> in{x.shape[2], x.shape[3]}, k{kh, kw};
    if (in[0] < 0 || in[1] < 0) im.unsupported("an image axis that follows the batch");
    const std::string auto_pad = im.attr_string("auto_pad", "NOTSET");
    auto out_shape = im.attr_ints("output_shape", {});
    if (out_shape.size() > 2) out_shape.erase(out_shape.begin(), out_shape.end() - 2); // [N, C, H, W] given
    std::array<std::int64_t, 2> out{};
    for (int a = 0; a < 2; ++a) {
        std::int64_t full = std::int64_t(o.stride[std::size_t(a)]) * (in[std::size_t(a)] - 1) +
                            o.output_padding[std::size_t(a)] + (k[std::size_t(a)] - 1) * o.dilation[std::size_t(a)] + 1;
        std::int64_t lo = 0, hi = 0;
        if (!out_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
            const std::int64_t want =
                out_shape.empty() ? in[std::size_t(a)] * o.stride[std::size_t(a)] : out_shape[std::size_t(a)];
            std::int64_t total = full - want;
            if (total < 0) { // a larger output: rows and columns no input reaches, at the end
                o.output_padding[std::size_t(a)] += small_int(im, -total, "output size");
                full -= total;
                total = 0;
            }
            if (auto_pad == "SAME_UPPER")
                lo = total / 2, hi = total - total / 2;
            else
                lo = total - total / 2, hi = total / 2;
        } else if (auto_pad == "NOTSET") {
            auto p = im.attr_ints("pads", {0, 0, 0, 0});
            if (p.size() != 4)
                im.unsupported("attribute 'pads' has " + std::to_string(p.size()) + " values; 2-D needs 4");
            lo = p[std::size_t(a)], hi = p[std::size_t(a + 2)];
        } else if (auto_pad != "VALID") {
            im.malformed("auto_pad '" + auto_pad + "' is none of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
        }
        o.pads[std::size_t(2 * a)] = small_int(im, lo, "pad");
        o.pads[std::size_t(2 * a + 1)] = small_int(im, hi, "pad");
        out[std::size_t(a)] = full - lo - hi;
        if (out[std::size_t(a)] < 1) im.unsupported("the padding leaves no output");
    }
    nn::conv_transpose2d_layer l;
    l.options = o;
    l.weights = nn::tensor<float>::from_shape({std::size_t(kh), std::size_t(kw), std::size_t(c), std::size_t(mg)});
    for (std::int64_t i = 0; i < c; ++i)
        for (std::int64_t j = 0; j < mg; ++j)
            for (std::int64_t y = 0; y < kh; ++y)
                for (std::int64_t z = 0; z < kw; ++z)
                    l.weights(std::size_t(y), std::size_t(z), std::size_t(i), std::size_t(j)) =
                        float(wt.values[std::size_t(((i * mg + j) * kh + y) * kw + z)]);
    if (im.has_input(2)) {
        auto const& b = im.input_constant(2, "bias");
        if (b.size() != std::size_t(m)) im.malformed("the bias does not have one value per output channel");
        l.bias = nn::tensor<float>::from_shape({std::size_t(m)});
        for (std::size_t j = 0; j < b.size(); ++j) l.bias.data()[j] = float(b.values[j]);
    }
    im.add(std::move(l), {x.node}, {x.shape[0], m, out[0], out[1]}, channels_last_perm(4));
}

// Y = A W (+ bias) on A's last axis: the dense layer of a Gemm or a MatMul. weight(k, j) is
// ONNX's element (row k of the [K, M] matrix); rows follow the network's feature order.
template <class Weight>
void add_dense(importer& im, value_info a, std::int64_t k, std::int64_t m, Weight weight, std::vector<float> bias)
{
    if (a.rank() == 0) im.malformed("the input is a scalar");
    if (a.perm.back() != a.rank() - 1) a = im.in_plain_layout(a); // the features held last
    if (a.shape.back() != k)
        im.malformed("the input has " + dim_text(a.shape.back()) + " features, the weight " + std::to_string(k));
    nn::dense_layer l;
    l.input = nn::dense_input::last_axis;
    l.weights = nn::tensor2<float>::from_shape({std::size_t(k), std::size_t(m)});
    for (std::int64_t r = 0; r < k; ++r) {
        const std::int64_t onnx_row = onnx_feature(a, r);
        for (std::int64_t j = 0; j < m; ++j) l.weights(std::size_t(r), std::size_t(j)) = float(weight(onnx_row, j));
    }
    if (!bias.empty()) {
        l.bias = nn::tensor1<float>::from_shape({std::size_t(m)});
        std::copy(bias.begin(), bias.end(), l.bias.begin());
    }
    dims shape = a.shape;
    shape.back() = m;
    im.add(std::move(l), {a.node}, shape, a.perm);
}

inline void convert_gemm(importer& im)
{
    value_info a = im.input_value(0, "input"); // a flattened feature map permutes the weight rows
    auto const& b = im.input_weights(1, "weight");
    if (a.rank() != 2) im.malformed("the input has shape " + shape_text(a.shape) + ", not 2-D");
    if (b.shape.size() != 2) im.malformed("the weight has shape " + shape_text(b.shape) + ", not 2-D");
    if (im.attr_int("transA", 0) != 0) { // only the layout changes
        a = im.in_row_major(a);
        std::swap(a.shape[0], a.shape[1]);
        for (auto& p : a.perm) p = 1 - p;
    }
    const bool trans_b = im.attr_int("transB", 0) != 0;
    const double alpha = im.attr_float("alpha", 1.0), beta = im.attr_float("beta", 1.0);
    const std::int64_t k = trans_b ? b.shape[1] : b.shape[0], m = trans_b ? b.shape[0] : b.shape[1];
    std::vector<float> bias;
    std::optional<constant> full_c; // a C that is not one value per output: added after
    if (im.has_input(2)) {
        auto const& c = im.input_constant(2, "bias");
        if (auto v = per_channel(c, m, 2, 1)) {
            for (double e : *v) bias.push_back(float(beta * e));
        } else {
            constant scaled = c;
            for (auto& e : scaled.values) e = double(float(beta * e));
            full_c = std::move(scaled);
        }
    }
    // alpha scales the weights: exact when it is 1 (the exporters' case), rounded once otherwise
    add_dense(
        im, a, k, m,
        [&](std::int64_t r, std::int64_t j) {
            const double e = b.float_at(std::size_t(trans_b ? j * k + r : r * m + j));
            return alpha == 1.0 ? e : alpha * e;
        },
        std::move(bias));
    if (full_c) {
        const auto y = im.values().at(im.node().output(0));
        const dims shape = broadcast_dims(im, y.shape, full_c->shape);
        if (shape != y.shape) im.malformed("C does not broadcast to the product's shape");
        nn::binary_layer l;
        l.op = nn::binary_op::add;
        l.constant = constant_in_layout(*full_c, 2, y.perm);
        im.add(std::move(l), {y.node}, shape, y.perm);
    }
}

// The ONNX shape of numpy's matmul of a and b.
inline dims matmul_dims(importer const& im, dims a, dims b)
{
    const bool av = a.size() == 1, bv = b.size() == 1;
    if (a.empty() || b.empty()) im.malformed("an operand is a scalar");
    if (av) a.insert(a.begin(), 1);
    if (bv) b.push_back(1);
    if (a.back() != b[b.size() - 2])
        im.malformed("shapes " + shape_text(a) + " and " + shape_text(b) + " do not multiply");
    dims r = broadcast_dims(im, dims(a.begin(), a.end() - 2), dims(b.begin(), b.end() - 2));
    if (!av) r.push_back(a[a.size() - 2]);
    if (!bv) r.push_back(b.back());
    return r;
}

inline void convert_matmul(importer& im)
{
    const bool ca = im.is_constant(0), cb = im.is_constant(1);
    if (ca && cb) im.unsupported("a product of two constants (fold the model's constants first)");
    if (cb && im.input_weights(1, "weight").shape.size() == 2) {
        auto const& b = im.input_weights(1, "weight");
        const std::int64_t k = b.shape[0], m = b.shape[1];
        return add_dense(im, im.input_value(0, "input"), k, m,
                         [&](std::int64_t r, std::int64_t j) { return b.float_at(std::size_t(r * m + j)); }, {});
    }
    nn::matmul_layer l;
    auto plain = [&](int k) { return im.in_plain_layout(im.input_value(k, "input")); };
    auto tensor_of = [&](constant const& c) {
        nn::tensor<float> t = nn::tensor<float>::from_shape(sizes_of(c));
        for (std::size_t i = 0; i < c.size(); ++i) t.data()[i] = float(c.values[i]);
        return t;
    };
    if (ca || cb) {
        const auto x = plain(ca ? 1 : 0);
        auto const& c = im.input_constant(ca ? 0 : 1, "weight");
        l.constant = tensor_of(c);
        l.constant_first = ca;
        const dims shape = ca ? matmul_dims(im, c.shape, x.shape) : matmul_dims(im, x.shape, c.shape);
        im.add(std::move(l), {x.node}, shape);
        return;
    }
    const auto a = plain(0), b = plain(1);
    im.add(std::move(l), {a.node, b.node}, matmul_dims(im, a.shape, b.shape));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

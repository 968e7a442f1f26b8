// One converter per ONNX operator, and the list of them: the importer, its error for an
// unknown operator and the documentation's list all derive from `operators`. A converter
// reads the node through the importer, adds the layer (or records a constant or an alias)
// and says what it cannot do with an unsupported_error naming the node.
#pragma once

#include "../../config.hpp"

#include "importer.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
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

// Strides, dilations, pads and auto_pad of a Conv or pooling node over an input of h x w,
// as explicit pads; ceil_mode is applied by the pooling converters.
inline spatial window_of(importer const& im, std::array<int, 2> kernel, std::int64_t h, std::int64_t w,
                         bool ceil_mode = false)
{
    spatial s;
    s.kernel = kernel;
    auto pick2 = [&](std::string_view name, std::int64_t fallback) {
        auto v = im.attr_ints(name, {fallback, fallback});
        if (v.size() != 2)
            im.unsupported("attribute '" + std::string(name) + "' has " + std::to_string(v.size()) +
                           " values; only 2-D windows (two values) are supported");
        return std::array<int, 2>{small_int(im, v[0], name), small_int(im, v[1], name)};
    };
    s.stride = pick2("strides", 1);
    s.dilation = pick2("dilations", 1);
    if (s.stride[0] < 1 || s.stride[1] < 1 || s.dilation[0] < 1 || s.dilation[1] < 1)
        im.malformed("strides and dilations must be >= 1");
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

inline value_info const& input4(importer& im, std::string_view role)
{
    auto const& v = im.input_value(0, role);
    if (v.shape.size() != 4)
        im.unsupported("the " + std::string(role) + " has shape " + shape_text(v.shape) +
                       "; only 4-D (NCHW) activations are supported here");
    return v;
}

inline std::vector<int> from(value_info const& v) { return {v.node}; }

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
    auto const& x = input4(im, "input");
    auto const& wt = im.input_constant(1, "weight");
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
    const auto s = window_of(im, {small_int(im, kh, "kernel"), small_int(im, kw, "kernel")}, x.shape[2], x.shape[3]);
    nn::conv2d_layer l;
    l.options.stride = s.stride;
    l.options.dilation = s.dilation;
    l.options.padding = nn::padding_mode::explicit_pads;
    l.options.pads = s.pads;
    l.options.groups = int(groups);
    l.weights = nn::tensor4<float>::from_shape({std::size_t(kh), std::size_t(kw), std::size_t(cg), std::size_t(m)});
    for (std::int64_t o = 0; o < m; ++o)
        for (std::int64_t i = 0; i < cg; ++i)
            for (std::int64_t y = 0; y < kh; ++y)
                for (std::int64_t z = 0; z < kw; ++z)
                    l.weights(y, z, i, o) = float(wt.values[std::size_t(((o * cg + i) * kh + y) * kw + z)]);
    if (im.has_input(2)) {
        auto const& b = im.input_constant(2, "bias");
        if (b.size() != std::size_t(m))
            im.malformed("the bias has " + std::to_string(b.size()) + " values for " + std::to_string(m) + " outputs");
        l.bias = nn::tensor1<float>::from_shape({std::size_t(m)});
        for (std::size_t j = 0; j < b.size(); ++j) l.bias(j) = float(b.values[j]);
    }
    im.add(std::move(l), from(x), {x.shape[0], m, s.out[0], s.out[1]});
}

// Y = A W (+ bias): the dense layer of a Gemm or a MatMul. weight(k, j) is ONNX's element
// (row k of the [K, M] matrix); rows follow the network's feature order.
template <class Weight>
void add_dense(importer& im, value_info const& a, std::int64_t k, std::int64_t m, Weight weight,
               std::vector<float> bias)
{
    if (a.shape.size() != 2)
        im.unsupported("the input has shape " + shape_text(a.shape) +
                       "; only 2-D [N, K] inputs are supported (flatten first)");
    if (a.shape[1] != k)
        im.malformed("the input has " + std::to_string(a.shape[1]) + " features, the weight " + std::to_string(k));
    nn::dense_layer l;
    l.weights = nn::tensor2<float>::from_shape({std::size_t(k), std::size_t(m)});
    for (std::int64_t r = 0; r < k; ++r) {
        const std::int64_t onnx_row = onnx_feature(a, r);
        for (std::int64_t j = 0; j < m; ++j) l.weights(std::size_t(r), std::size_t(j)) = float(weight(onnx_row, j));
    }
    if (!bias.empty()) {
        l.bias = nn::tensor1<float>::from_shape({std::size_t(m)});
        std::copy(bias.begin(), bias.end(), l.bias.begin());
    }
    im.add(std::move(l), from(a), {a.shape[0], m});
}

// A constant that broadcasts along one axis of length n (a bias): its n values, or none
// when it broadcasts otherwise.
inline std::optional<std::vector<double>> per_channel(constant const& c, std::int64_t n, std::size_t rank,
                                                      std::size_t axis)
{
    if (c.size() == 1) return std::vector<double>(std::size_t(n), c.values[0]);
    if (c.size() != std::size_t(n) || c.shape.size() > rank) return std::nullopt;
    // right-aligned broadcasting: the one non-1 dimension must land on axis
    const std::size_t offset = rank - c.shape.size();
    for (std::size_t d = 0; d < c.shape.size(); ++d)
        if (c.shape[d] != 1 && d + offset != axis) return std::nullopt;
    return c.values;
}

inline void convert_gemm(importer& im)
{
    if (im.attr_int("transA", 0) != 0) im.unsupported("transA = 1 (a transposed activation) is not supported");
    auto const& a = im.input_value(0, "input");
    auto const& b = im.input_constant(1, "weight");
    if (b.shape.size() != 2) im.malformed("the weight has shape " + shape_text(b.shape) + ", not 2-D");
    const bool trans_b = im.attr_int("transB", 0) != 0;
    const double alpha = im.attr_float("alpha", 1.0), beta = im.attr_float("beta", 1.0);
    const std::int64_t k = trans_b ? b.shape[1] : b.shape[0], m = trans_b ? b.shape[0] : b.shape[1];
    std::vector<float> bias;
    if (im.has_input(2)) {
        auto const& c = im.input_constant(2, "bias");
        auto v = per_channel(c, m, 2, 1);
        if (!v)
            im.unsupported("the bias of shape " + shape_text(c.shape) + " is not one value per output (a bias that " +
                           "depends on the batch row is not supported)");
        for (double e : *v) bias.push_back(float(beta * e));
    }
    // alpha scales the weights: exact when it is 1 (the exporters' case), rounded once otherwise
    add_dense(
        im, a, k, m,
        [&](std::int64_t r, std::int64_t j) {
            const double e = b.values[std::size_t(trans_b ? j * k + r : r * m + j)];
            return alpha == 1.0 ? e : alpha * e;
        },
        std::move(bias));
}

inline void convert_matmul(importer& im)
{
    auto const& a = im.input_value(0, "input");
    auto const& b = im.input_constant(1, "weight");
    if (b.shape.size() != 2)
        im.unsupported("the weight has shape " + shape_text(b.shape) + "; only a 2-D weight is supported");
    const std::int64_t k = b.shape[0], m = b.shape[1];
    add_dense(im, a, k, m, [&](std::int64_t r, std::int64_t j) { return b.values[std::size_t(r * m + j)]; }, {});
}

// An elementwise activation (Relu, LeakyRelu, Clip as ReLU6, Sigmoid). Right after a Conv,
// Gemm, MatMul, BatchNormalization or Add
// whose output nothing else reads, it is fused into that layer, as the library's layers
// (and hardware datapaths) apply it: one layer, one scope, the activation quantized once.
// Otherwise it is a layer of its own, in its input's shape.
inline void add_activation(importer& im, nn::activation act, double alpha = 0.2)
{
    auto const& x = im.input_value(0, "input");
    if (x.node >= 0 && !x.dequantized && std::size_t(x.node) + 1 == im.net().nodes().size() &&
        im.uses().at(im.input_name(0)) == 1) {
        auto& op = im.net().layer_at(im.net().nodes()[std::size_t(x.node)].name);
        const bool fused = std::visit(
            [&](auto& l) {
                using L = std::decay_t<decltype(l)>;
                if constexpr (std::is_same_v<L, nn::conv2d_layer> || std::is_same_v<L, nn::dense_layer> ||
                              std::is_same_v<L, nn::batch_norm_layer> || std::is_same_v<L, nn::add_layer>) {
                    if (l.act != nn::activation::none) return false;
                    l.act = act;
                    l.alpha = alpha;
                    return true;
                }
                return false;
            },
            op);
        if (fused) return im.set_output(x);
    }
    nn::activation_layer l;
    l.act = act;
    l.alpha = alpha;
    im.add(l, from(x), x.shape, x.flattened_chw);
}

inline void convert_relu(importer& im) { add_activation(im, nn::activation::relu); }
inline void convert_sigmoid(importer& im) { add_activation(im, nn::activation::sigmoid); }
inline void convert_leaky_relu(importer& im)
{
    add_activation(im, nn::activation::leaky_relu, im.attr_float("alpha", 0.01));
}

inline void convert_clip(importer& im)
{
    constexpr double inf = std::numeric_limits<double>::infinity();
    double lo = -inf, hi = inf;
    if (im.opset() < 11) {
        lo = im.attr_float("min", -inf);
        hi = im.attr_float("max", inf);
    } else {
        auto bound = [&](int k, double fallback) {
            if (!im.has_input(k)) return fallback;
            auto const& c = im.input_constant(k, k == 1 ? "min" : "max");
            if (c.size() != 1) im.malformed("the bound is not a single value");
            return c.values[0];
        };
        lo = bound(1, -inf);
        hi = bound(2, inf);
    }
    if (lo == -inf && hi == inf) return im.set_output(im.input_value(0, "input")); // no bounds: the identity
    if (lo == 0 && hi == 6) return add_activation(im, nn::activation::relu6);
    if (lo == 0 && hi == inf) return add_activation(im, nn::activation::relu);
    auto const& x = im.input_value(0, "input");
    if (!(lo <= hi)) im.unsupported("Clip to [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: min above max");
    nn::clip_layer l; // any other bounds: a layer of its own (float bounds, as ONNX's)
    l.lo = float(lo);
    l.hi = float(hi);
    im.add(l, from(x), x.shape, x.flattened_chw);
}

template <bool Max>
void convert_pool(importer& im)
{
    auto const& x = input4(im, "input");
    im.require_single_output("the indices");
    auto k = im.attr_ints("kernel_shape", {});
    if (k.size() != 2)
        im.unsupported("kernel_shape has " + std::to_string(k.size()) + " values; only 2-D pooling is supported");
    if (im.attr_int("storage_order", 0) != 0 && !Max) im.malformed("storage_order is a MaxPool attribute");
    const bool ceil_mode = im.attr_int("ceil_mode", 0) != 0;
    const auto s = window_of(im, {small_int(im, k[0], "kernel"), small_int(im, k[1], "kernel")}, x.shape[2], x.shape[3],
                             ceil_mode);
    if (s.dilation != std::array<int, 2>{1, 1}) im.unsupported("pooling with dilations is not supported");
    nn::pool_options o;
    o.size = s.kernel;
    o.stride = s.stride;
    o.padding = nn::padding_mode::explicit_pads;
    o.pads = s.pads;
    // ceil_mode: the windows past the floor division are the ones the padding at the end
    // would give; the network pads there (never winning a max, never counted)
    for (int a = 0; a < 2; ++a) {
        const std::int64_t in = a == 0 ? x.shape[2] : x.shape[3];
        const std::int64_t need = (s.out[a] - 1) * s.stride[a] + s.kernel[a] - in - o.pads[std::size_t(2 * a)];
        if (need > o.pads[std::size_t(2 * a + 1)]) o.pads[std::size_t(2 * a + 1)] = int(need);
    }
    if constexpr (Max) {
        im.add(nn::max_pool_layer{o}, from(x), {x.shape[0], x.shape[1], s.out[0], s.out[1]});
    } else {
        // count_include_pad: every window lies inside the padded input, so each divides by
        // the kernel's size; windows that ceil_mode adds past the padding are refused
        const bool padded = s.pads != std::array<int, 4>{0, 0, 0, 0};
        if (im.attr_int("count_include_pad", 0) != 0 && padded) {
            if (o.pads != s.pads)
                im.unsupported("count_include_pad = 1 with ceil_mode windows that reach past the padding is not "
                               "supported");
            o.count_pads = true;
        }
        im.add(nn::avg_pool_layer{o}, from(x), {x.shape[0], x.shape[1], s.out[0], s.out[1]});
    }
}
inline void convert_max_pool(importer& im) { convert_pool<true>(im); }
inline void convert_average_pool(importer& im) { convert_pool<false>(im); }

inline void convert_global_average_pool(importer& im)
{
    auto const& x = input4(im, "input");
    im.add(nn::global_avg_pool_layer{}, from(x), {x.shape[0], x.shape[1], 1, 1});
}

// A max pooling whose one window is the whole feature map.
inline void convert_global_max_pool(importer& im)
{
    auto const& x = input4(im, "input");
    nn::pool_options o;
    o.size = {small_int(im, x.shape[2], "height"), small_int(im, x.shape[3], "width")};
    o.stride = o.size;
    im.add(nn::max_pool_layer{o}, from(x), {x.shape[0], x.shape[1], 1, 1});
}

inline void convert_batch_norm(importer& im)
{
    auto const& x = im.input_value(0, "input");
    if (x.shape.size() != 4 && x.shape.size() != 2)
        im.unsupported("the input has shape " + shape_text(x.shape) + "; only 4-D and 2-D inputs are supported");
    if (im.attr_int("training_mode", 0) != 0) im.unsupported("training_mode = 1 is not supported (inference only)");
    if (im.opset() < 9 && im.attr_int("spatial", 1) != 1) im.unsupported("spatial = 0 is not supported");
    im.require_single_output("running statistics");
    const std::int64_t c = x.shape[1];
    nn::batch_norm_layer l;
    l.epsilon = float(im.attr_float("epsilon", 1e-5));
    std::array<nn::tensor1<float>*, 4> dest{&l.gamma, &l.beta, &l.mean, &l.variance};
    constexpr std::array<std::string_view, 4> roles{"scale", "bias", "mean", "variance"};
    for (int k = 0; k < 4; ++k) {
        auto const& p = im.input_constant(k + 1, roles[std::size_t(k)]);
        if (p.size() != std::size_t(c))
            im.malformed("the " + std::string(roles[std::size_t(k)]) + " has " + std::to_string(p.size()) +
                         " values for " + std::to_string(c) + " channels");
        *dest[std::size_t(k)] = nn::tensor1<float>::from_shape({std::size_t(c)});
        for (std::size_t j = 0; j < p.size(); ++j) (*dest[std::size_t(k)])(j) = float(p.values[j]);
    }
    if (x.flattened_chw) im.unsupported("batch normalization of a flattened feature map is not supported");
    im.add(std::move(l), from(x), x.shape);
}

inline void convert_add(importer& im)
{
    const bool c0 = im.is_constant(0), c1 = im.is_constant(1);
    if (c0 && c1) im.unsupported("both inputs are constants (fold the model's constants first)");
    if (!c0 && !c1) {
        auto const& a = im.input_value(0, "first input");
        auto const& b = im.input_value(1, "second input");
        if (a.shape != b.shape)
            im.unsupported("shapes " + shape_text(a.shape) + " and " + shape_text(b.shape) +
                           " differ; only inputs of the same shape are added (no broadcasting)");
        if (a.flattened_chw != b.flattened_chw) im.unsupported("the inputs hold their features in different orders");
        im.add(nn::add_layer{}, {a.node, b.node}, a.shape, a.flattened_chw);
        return;
    }
    // a constant: a bias, folded into the Conv, Gemm or MatMul before it
    auto const& x = im.input_value(c0 ? 1 : 0, "input");
    auto const& c = im.input_constant(c0 ? 0 : 1, "bias");
    const std::string& xname = im.input_name(c0 ? 1 : 0);
    auto refuse = [&](std::string const& why) {
        im.unsupported("adding the constant '" + im.input_name(c0 ? 0 : 1) + "' of shape " + shape_text(c.shape) +
                       " is supported only as a per-channel bias right after a Conv, Gemm or MatMul; " + why);
    };
    if (x.node < 0) refuse("here it is added to the network's input");
    if (x.dequantized) refuse("here it is added after a DequantizeLinear");
    if (x.shape.size() < 2) refuse("the input has rank " + std::to_string(x.shape.size()));
    if (im.uses().at(xname) != 1) refuse("the input '" + xname + "' is read elsewhere too");
    auto& op = im.net().layer_at(im.net().nodes()[std::size_t(x.node)].name);
    const std::int64_t channels = x.shape[1];
    auto values = per_channel(c, channels, x.shape.size(), 1);
    if (!values) refuse("it is not one value per channel");
    auto fold = [&](auto& layer) {
        if (layer.bias.size() == 0)
            layer.bias = nn::tensor1<float>(std::array<std::size_t, 1>{std::size_t(channels)}, 0.0f);
        // the sum of two float32 biases, rounded once, as the exported graph computes it
        for (std::size_t j = 0; j < layer.bias.size(); ++j) layer.bias(j) = float(double(layer.bias(j)) + (*values)[j]);
    };
    if (auto* conv = std::get_if<nn::conv2d_layer>(&op); conv && conv->act == nn::activation::none)
        fold(*conv);
    else if (auto* dense = std::get_if<nn::dense_layer>(&op); dense && dense->act == nn::activation::none)
        fold(*dense);
    else
        refuse("here the input comes from a " + std::string(std::visit([](auto const& l) { return l.kind; }, op)) +
               " layer");
    im.set_output(x);
}

// Mul by a constant (one value, or one per channel) is a layer that multiplies and rounds
// once, as ONNX does: a depthwise 1x1 convolution for a 4-D input, a dense layer with a
// diagonal weight for a 2-D one (exact for finite inputs: the other products are zeros).
inline void convert_mul(importer& im)
{
    const bool c0 = im.is_constant(0), c1 = im.is_constant(1);
    if (c0 && c1) im.unsupported("both inputs are constants (fold the model's constants first)");
    if (!c0 && !c1)
        im.unsupported("both inputs are computed; only Mul by a constant (a scalar or one value per channel) is "
                       "supported");
    auto const& x = im.input_value(c0 ? 1 : 0, "input");
    auto const& c = im.input_constant(c0 ? 0 : 1, "factor");
    if (x.shape.size() != 4 && x.shape.size() != 2)
        im.unsupported("the input has shape " + shape_text(x.shape) + "; only 4-D and 2-D inputs are supported");
    const std::int64_t channels = x.shape[1];
    auto values = per_channel(c, channels, x.shape.size(), 1);
    if (!values)
        im.unsupported("the factor of shape " + shape_text(c.shape) + " is neither one value nor one per channel of " +
                       shape_text(x.shape));
    if (x.shape.size() == 4) {
        nn::conv2d_layer l;
        l.options.padding = nn::padding_mode::explicit_pads;
        l.options.groups = int(channels);
        l.weights = nn::tensor4<float>::from_shape({1, 1, 1, std::size_t(channels)});
        for (std::size_t j = 0; j < std::size_t(channels); ++j) l.weights(0, 0, 0, j) = float((*values)[j]);
        im.add(std::move(l), from(x), x.shape);
        return;
    }
    constexpr std::int64_t most = 4096; // the diagonal weight is features^2 floats
    if (channels > most)
        im.unsupported("Mul of " + std::to_string(channels) + " features is not supported (at most " +
                       std::to_string(most) + ")");
    nn::dense_layer l;
    l.weights = nn::tensor2<float>(std::array<std::size_t, 2>{std::size_t(channels), std::size_t(channels)}, 0.0f);
    for (std::int64_t r = 0; r < channels; ++r) {
        l.weights(std::size_t(r), std::size_t(r)) = float((*values)[std::size_t(onnx_feature(x, r))]);
    }
    im.add(std::move(l), from(x), x.shape, x.flattened_chw);
}

inline void convert_concat(importer& im)
{
    std::vector<value_info const*> parts;
    for (int k = 0; k < im.node().input_size(); ++k) parts.push_back(&im.input_value(k, "input"));
    if (parts.empty()) im.malformed("has no inputs");
    const auto& first = *parts.front();
    const auto axis = normalized_axis(im, im.attr_int("axis", 1), first.shape.size());
    if (axis != 1 || (first.shape.size() != 4 && first.shape.size() != 2))
        im.unsupported("only concatenation along the channels (axis 1) of 4-D or 2-D tensors is supported");
    std::vector<int> inputs;
    auto shape = first.shape;
    shape[1] = 0;
    for (auto const* p : parts) {
        auto a = p->shape, b = first.shape;
        a[1] = b[1] = 0;
        if (a != b || p->flattened_chw)
            im.unsupported("the inputs' shapes " + shape_text(first.shape) + " and " + shape_text(p->shape) +
                           " differ outside the channels, or hold flattened feature maps");
        shape[1] += p->shape[1];
        inputs.push_back(p->node);
    }
    im.add(nn::concat_layer{}, inputs, shape);
}

// [N, C, H, W] to [N, C*H*W] (ONNX order, c slowest); the network's flatten keeps its
// NHWC order, which the next Gemm or MatMul's weights follow.
inline void flatten_to_2d(importer& im, value_info const& x)
{
    if (x.shape.size() == 2) return im.set_output(x);
    const std::int64_t c = x.shape[1], h = x.shape[2], w = x.shape[3];
    std::optional<std::array<std::int64_t, 3>> order;
    if (c > 1 && h * w > 1) order = std::array<std::int64_t, 3>{c, h, w};
    im.add(nn::flatten_layer{}, from(x), {x.shape[0], c * h * w}, order);
}

inline void convert_flatten(importer& im)
{
    auto const& x = im.input_value(0, "input");
    if (x.shape.size() != 4 && x.shape.size() != 2)
        im.unsupported("the input has shape " + shape_text(x.shape) + "; only 4-D and 2-D inputs are supported");
    if (normalized_axis(im, im.attr_int("axis", 1), x.shape.size()) != 1)
        im.unsupported("only axis 1 (keep the batch, flatten the rest) is supported");
    flatten_to_2d(im, x);
}

inline void convert_reshape(importer& im)
{
    auto const& x = im.input_value(0, "input");
    auto const& target = im.input_constant(1, "shape");
    if (x.shape.size() != 4 && x.shape.size() != 2)
        im.unsupported("the input has shape " + shape_text(x.shape) + "; only 4-D and 2-D inputs are supported");
    const bool allow_zero = im.attr_int("allowzero", 0) != 0;
    std::int64_t rest = 1;
    for (std::size_t d = 1; d < x.shape.size(); ++d) rest *= x.shape[d];
    auto refuse = [&] {
        std::string t;
        for (double v : target.values) t += (t.empty() ? "" : ", ") + std::to_string(std::int64_t(v));
        im.unsupported("reshaping " + shape_text(x.shape) + " to [" + t +
                       "] is not supported (only to [N, features], keeping the batch)");
    };
    if (target.size() == x.shape.size()) { // the same shape: nothing to do
        bool same = true;
        for (std::size_t d = 0; d < target.size(); ++d) {
            const auto v = std::int64_t(target.values[d]);
            if (!(v == x.shape[d] || (v == 0 && !allow_zero) || (v == -1 && d > 0 && x.shape[d] >= 0))) same = false;
        }
        if (same && (x.shape.size() == 2 || target.values[0] == 0 || target.values[0] == double(x.shape[0])) &&
            (x.shape[0] >= 0 || target.values[0] == 0))
            return im.set_output(x);
    }
    if (target.size() != 2) refuse();
    const auto n = std::int64_t(target.values[0]), f = std::int64_t(target.values[1]);
    const bool keeps_batch = (n == 0 && !allow_zero) || (x.shape[0] >= 0 && n == x.shape[0]) || (n == -1 && f == rest);
    if (!keeps_batch || !(f == rest || (f == -1 && n != -1))) refuse();
    flatten_to_2d(im, x);
}

inline void convert_softmax(importer& im)
{
    auto const& x = im.input_value(0, "input");
    const bool flat = x.shape.size() == 2 || (x.shape.size() == 4 && x.shape[2] == 1 && x.shape[3] == 1);
    const std::int64_t axis = normalized_axis(im, im.attr_int("axis", im.opset() < 13 ? 1 : -1), x.shape.size());
    // before opset 13 the axis flattens [axis, ...) into one row; from 13 it is one axis
    const bool over_features = x.shape.size() == 2 ? axis == 1 : (im.opset() < 13 ? axis == 1 : axis == 1 && flat);
    if (!flat || !over_features)
        im.unsupported("softmax of shape " + shape_text(x.shape) + " along axis " + std::to_string(axis) +
                       " is not supported (only along the features of [N, F] or [N, C, 1, 1])");
    im.add(nn::softmax_layer{}, from(x), {x.shape[0], x.shape[1]});
}

inline void convert_identity(importer& im) { im.set_output(im.input_value(0, "input")); }

inline void convert_dropout(importer& im)
{
    im.require_single_output("the mask");
    if (im.has_input(2)) {
        auto const& training = im.input_constant(2, "training_mode");
        if (training.size() != 1 || training.values[0] != 0) im.unsupported("training_mode = true is not supported");
    }
    im.set_output(im.input_value(0, "input"));
}

inline void convert_constant(importer& im)
{
    auto const& n = im.node();
    if (n.attribute_size() != 1) im.malformed("a Constant needs exactly one attribute");
    auto const& a = n.attribute(0);
    constant c;
    if (a.name() == "value") {
        c = to_constant(a.t(), im.where() + ": value");
    } else if (a.name() == "value_float") {
        c.values = {double(a.f())};
        c.element_type = ::onnx::TensorProto::FLOAT;
    } else if (a.name() == "value_int") {
        c.values = {double(a.i())};
        c.element_type = ::onnx::TensorProto::INT64;
    } else if (a.name() == "value_floats" || a.name() == "value_ints") {
        const bool floats = a.name() == "value_floats";
        if (floats)
            for (float v : a.floats()) c.values.push_back(double(v));
        else
            for (auto v : a.ints()) c.values.push_back(double(v));
        c.shape = {std::int64_t(c.values.size())};
        c.element_type = floats ? ::onnx::TensorProto::FLOAT : ::onnx::TensorProto::INT64;
    } else {
        im.unsupported("a Constant's '" + a.name() + "' is not supported");
    }
    im.set_output_constant(std::move(c));
}

// ---- QDQ: QuantizeLinear and DequantizeLinear ---------------------------------------------

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
        value_info out;
        out.shape = v.shape; // the network's input, decoded
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

// ---- the list -------------------------------------------------------------------------

struct operator_entry
{
    std::string_view name;
    void (*convert)(importer&);
};

inline constexpr std::array operators{
    operator_entry{"Conv", convert_conv},
    operator_entry{"Gemm", convert_gemm},
    operator_entry{"MatMul", convert_matmul},
    operator_entry{"Add", convert_add},
    operator_entry{"Mul", convert_mul},
    operator_entry{"Relu", convert_relu},
    operator_entry{"LeakyRelu", convert_leaky_relu},
    operator_entry{"Sigmoid", convert_sigmoid},
    operator_entry{"Clip", convert_clip},
    operator_entry{"MaxPool", convert_max_pool},
    operator_entry{"AveragePool", convert_average_pool},
    operator_entry{"GlobalAveragePool", convert_global_average_pool},
    operator_entry{"GlobalMaxPool", convert_global_max_pool},
    operator_entry{"BatchNormalization", convert_batch_norm},
    operator_entry{"Concat", convert_concat},
    operator_entry{"Flatten", convert_flatten},
    operator_entry{"Reshape", convert_reshape},
    operator_entry{"Softmax", convert_softmax},
    operator_entry{"Identity", convert_identity},
    operator_entry{"Dropout", convert_dropout},
    operator_entry{"Constant", convert_constant},
    operator_entry{"QuantizeLinear", convert_quantize_linear},
    operator_entry{"DequantizeLinear", convert_dequantize_linear},
};

inline std::string operator_list()
{
    std::string r;
    for (auto const& e : operators) r += (r.empty() ? "" : ", ") + std::string(e.name);
    return r;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

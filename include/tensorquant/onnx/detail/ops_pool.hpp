// Spatial operators: MaxPool and AveragePool (2-D windows over NHWC images),
// GlobalAveragePool and GlobalMaxPool (over images, and as reductions over the spatial axes
// of any rank), Resize and Upsample (2-D: nearest and linear).
#pragma once

#include "../../config.hpp"

#include "importer.hpp"
#include "ops_conv.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

template <bool Max>
void convert_pool(importer& im)
{
    im.require_single_output("the indices");
    const bool ceil_mode = im.attr_int("ceil_mode", 0) != 0;
    // zeros a Pad held back become counted padding (they were elements of the input)
    std::array<int, 4> held{0, 0, 0, 0};
    const auto x = image_input(im, Max || ceil_mode ? nullptr : &held);
    auto k = im.attr_ints("kernel_shape", {});
    if (k.size() != 2)
        im.unsupported("kernel_shape has " + std::to_string(k.size()) + " values; only 2-D pooling is supported");
    if (im.attr_int("storage_order", 0) != 0 && !Max) im.malformed("storage_order is a MaxPool attribute");
    auto s = window_of(im, {small_int(im, k[0], "kernel"), small_int(im, k[1], "kernel")},
                       x.shape[2] + held[0] + held[1], x.shape[3] + held[2] + held[3], ceil_mode);
    if (s.dilation != std::array<int, 2>{1, 1}) im.unsupported("pooling with dilations is not supported");
    const bool held_pads = held != std::array<int, 4>{0, 0, 0, 0};
    for (int a = 0; a < 4; ++a) s.pads[std::size_t(a)] += held[std::size_t(a)];
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
    const dims shape{x.shape[0], x.shape[1], s.out[0], s.out[1]};
    if constexpr (Max) {
        im.add(nn::max_pool_layer{o}, {x.node}, shape, channels_last_perm(4));
    } else {
        // count_include_pad: every window lies inside the padded input, so each divides by
        // the kernel's size; windows that ceil_mode adds past the padding are refused
        const bool padded = s.pads != std::array<int, 4>{0, 0, 0, 0};
        if ((im.attr_int("count_include_pad", 0) != 0 || held_pads) && padded) {
            if (o.pads != s.pads)
                im.unsupported("count_include_pad = 1 with ceil_mode windows that reach past the padding is not "
                               "supported");
            o.count_pads = true;
        }
        im.add(nn::avg_pool_layer{o}, {x.node}, shape, channels_last_perm(4));
    }
}
inline void convert_max_pool(importer& im) { convert_pool<true>(im); }
inline void convert_average_pool(importer& im) { convert_pool<false>(im); }

// Over every axis after the channels: an NHWC image's pooling layer, or a reduction.
template <bool Max>
void convert_global_pool(importer& im)
{
    auto const& v = im.input_value(0, "input");
    if (v.rank() < 3) im.malformed("the input has shape " + shape_text(v.shape) + "; it needs spatial axes");
    dims shape = v.shape;
    for (std::size_t d = 2; d < shape.size(); ++d) {
        if (shape[d] < 0) im.unsupported("pooling over an axis that follows the batch");
        shape[d] = 1;
    }
    if (v.rank() == 4 && v.shape[2] > 0 && v.shape[3] > 0) {
        const auto x = im.in_layout(v, channels_last_perm(4));
        if constexpr (Max) {
            nn::pool_options o;
            o.size = {small_int(im, x.shape[2], "height"), small_int(im, x.shape[3], "width")};
            o.stride = o.size;
            im.add(nn::max_pool_layer{o}, {x.node}, shape, channels_last_perm(4));
        } else {
            im.add(nn::global_avg_pool_layer{}, {x.node}, shape, channels_last_perm(4));
        }
        return;
    }
    const auto x = im.input_held(0, "input");
    nn::reduce_layer l;
    l.op = Max ? nn::reduce_op::max : nn::reduce_op::mean;
    for (std::size_t d = 2; d < x.rank(); ++d) l.axes.push_back(x.physical_axis(d));
    std::sort(l.axes.begin(), l.axes.end());
    im.add(std::move(l), {x.node}, shape, x.perm);
}
inline void convert_global_average_pool(importer& im) { convert_global_pool<false>(im); }
inline void convert_global_max_pool(importer& im) { convert_global_pool<true>(im); }

// Resize (opsets 10 to 17) and Upsample (7 to 9) over H and W of an image.
inline void convert_resize(importer& im)
{
    const bool upsample = im.node().op_type() == "Upsample";
    const auto x = image_input(im);
    nn::resize_options o;
    const std::string mode = im.attr_string("mode", "nearest");
    if (mode == "nearest")
        o.mode = nn::resize_mode::nearest;
    else if (mode == "linear" || mode == "bilinear")
        o.mode = nn::resize_mode::linear;
    else
        im.unsupported("mode '" + mode + "' is not supported (nearest and linear are)");
    // before opset 11 the coordinates are asymmetric and the nearest index rounds down
    const bool old = upsample || im.opset() < 11;
    const std::string coords = old ? "asymmetric" : im.attr_string("coordinate_transformation_mode", "half_pixel");
    auto c = std::find(nn::resize_coordinates_names.begin(), nn::resize_coordinates_names.end(), coords);
    if (c == nn::resize_coordinates_names.end())
        im.unsupported("coordinate_transformation_mode '" + coords + "' is not supported");
    o.coordinates = nn::resize_coordinates(c - nn::resize_coordinates_names.begin());
    const std::string nearest = old ? (upsample || im.opset() < 11 ? "floor" : "round_prefer_floor")
                                    : im.attr_string("nearest_mode", "round_prefer_floor");
    auto r = std::find(nn::nearest_rounding_names.begin(), nn::nearest_rounding_names.end(), nearest);
    if (r == nn::nearest_rounding_names.end()) im.unsupported("nearest_mode '" + nearest + "' is not supported");
    o.rounding = nn::nearest_rounding(r - nn::nearest_rounding_names.begin());
    std::vector<double> scales;
    std::vector<std::int64_t> sizes;
    if (upsample && im.opset() < 9) {
        scales = im.attr_floats("scales", {});
    } else {
        const int si = upsample || im.opset() < 11 ? 1 : 2;
        if (im.has_input(si) && im.input_constant(si, "scales").size()) scales = im.input_constant(si, "scales").values;
        if (!upsample && im.opset() >= 11 && im.has_input(3)) sizes = im.input_ints(3, "sizes");
    }
    if (scales.empty() && sizes.empty()) im.malformed("neither scales nor sizes are given");
    dims shape = x.shape;
    if (!sizes.empty()) {
        if (sizes.size() != 4 || sizes[0] != x.shape[0] || sizes[1] != x.shape[1])
            im.unsupported("only resizing H and W of an NCHW image is supported");
        for (int a = 0; a < 2; ++a) {
            o.sizes[std::size_t(a)] = std::size_t(sizes[std::size_t(a + 2)]);
            o.scales[std::size_t(a)] = double(sizes[std::size_t(a + 2)]) / double(x.shape[std::size_t(a + 2)]);
            shape[std::size_t(a + 2)] = sizes[std::size_t(a + 2)];
        }
    } else {
        if (scales.size() != 4 || scales[0] != 1 || scales[1] != 1)
            im.unsupported("only resizing H and W of an NCHW image is supported");
        for (int a = 0; a < 2; ++a) {
            const double sc = double(float(scales[std::size_t(a + 2)])); // a float tensor
            if (!(sc > 0)) im.malformed("a scale is not positive");
            o.scales[std::size_t(a)] = sc;
            shape[std::size_t(a + 2)] = std::int64_t(std::floor(double(x.shape[std::size_t(a + 2)]) * sc));
        }
    }
    if (im.attr_string("coordinate_transformation_mode", "") == "tf_crop_and_resize")
        im.unsupported("tf_crop_and_resize is not supported");
    im.add(nn::resize_layer{o}, {x.node}, shape, channels_last_perm(4));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

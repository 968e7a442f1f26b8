// Normalizations and reductions: BatchNormalization (channels of any rank), LayerNormalization
// (opset 17, and the pattern of earlier opsets, patterns.hpp), ReduceSum, ReduceMean,
// ReduceMax, ReduceMin, ReduceProd (computed tensors; ReduceProd on constants only).
#pragma once

#include "../../config.hpp"

#include "folding.hpp"
#include "importer.hpp"
#include "ops_shape.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

inline void convert_batch_norm(importer& im)
{
    auto const& v = im.input_value(0, "input");
    if (v.rank() < 2) im.malformed("the input has shape " + shape_text(v.shape) + "; it needs channels (axis 1)");
    if (im.attr_int("training_mode", 0) != 0) im.unsupported("training_mode = 1 is not supported (inference only)");
    if (im.opset() < 9 && im.attr_int("spatial", 1) != 1) im.unsupported("spatial = 0 is not supported");
    im.require_single_output("running statistics");
    const auto x = im.in_layout(im.input_held(0, "input"), channels_last_perm(v.rank()));
    const std::int64_t c = x.shape[1];
    if (c < 0) im.unsupported("normalizing along an axis that follows the batch");
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
    im.add(std::move(l), {x.node}, x.shape, x.perm);
}

// The values of a constant broadcast over `shape` (scale and bias of a normalization), in
// row-major order.
inline std::vector<float> spread_over(importer const& im, constant const& c, dims const& shape, char const* role)
{
    const std::vector<std::size_t> to(shape.begin(), shape.end());
    nn::tensor<double> idx;
    try {
        idx = nn::kernels::expanded(index_tensor(c), to);
    } catch (shape_error const&) {
        im.malformed(std::string("the ") + role + " of shape " + shape_text(c.shape) + " does not broadcast to " +
                     shape_text(shape));
    }
    if (idx.size() != nn::kernels::element_count(to))
        im.malformed(std::string("the ") + role + " of shape " + shape_text(c.shape) + " is larger than " +
                     shape_text(shape));
    std::vector<float> r(idx.size());
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = float(c.values[std::size_t(idx.data()[i])]);
    return r;
}

// The statistics a LayerNormalization gives besides its result (outputs 1 and 2, when
// read): the mean, and 1 / sqrt(variance + epsilon), by layers as ONNX's definition
// computes them.
inline void add_norm_statistics(importer& im, value_info const& x, std::size_t axis, float epsilon)
{
    if (im.uses_of_output(1) == 0 && im.uses_of_output(2) == 0) return;
    dims stat = x.shape;
    std::vector<std::size_t> axes;
    for (std::size_t a = axis; a < x.rank(); ++a) stat[a] = 1, axes.push_back(a);
    auto reduce = [&](int from, char const* name) {
        value_info v = x;
        v.shape = stat;
        v.node = im.add_layer(nn::reduce_layer{nn::reduce_op::mean, axes, true}, {from}, name);
        return v;
    };
    const auto mean = reduce(x.node, "/mean");
    if (im.uses_of_output(1) > 0) im.set_output(mean, 1);
    if (im.uses_of_output(2) == 0) return;
    auto binary = [&](nn::binary_op op, std::vector<int> in, char const* name) {
        nn::binary_layer l;
        l.op = op;
        return im.add_layer(std::move(l), std::move(in), name);
    };
    const int centered = binary(nn::binary_op::sub, {x.node, mean.node}, "/centered");
    const int squared = binary(nn::binary_op::mul, {centered, centered}, "/squared");
    auto variance = reduce(squared, "/variance");
    nn::binary_layer plus;
    plus.constant = nn::tensor<float>::from_shape(std::vector<std::size_t>(x.rank(), 1));
    plus.constant.data()[0] = epsilon;
    variance.node = im.add_layer(std::move(plus), {variance.node}, "/variance_epsilon");
    variance.node = im.add_layer(nn::activation_layer{nn::activation::sqrt}, {variance.node}, "/stddev");
    variance.node = im.add_layer(nn::activation_layer{nn::activation::reciprocal}, {variance.node}, "/inv_stddev");
    im.set_output(variance, 2);
}

inline void convert_layer_norm(importer& im)
{
    auto x = im.input_held(0, "input");
    auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", -1), x.rank()));
    if (auto axes = im.attr_ints("axes", {}); !axes.empty()) { // the pattern of ReduceMean nodes
        std::vector<std::size_t> a;
        for (auto v : axes) a.push_back(std::size_t(normalized_axis(im, v, x.rank())));
        std::sort(a.begin(), a.end());
        for (std::size_t k = 0; k < a.size(); ++k)
            if (a[k] != x.rank() - a.size() + k)
                im.unsupported("the layer normalization pattern normalizes over axes that are not the last ones");
        axis = a.front();
    }
    bool trailing = true;
    for (std::size_t p = axis; p < x.rank(); ++p) trailing = trailing && x.perm[p] == p;
    if (!trailing) x = im.in_plain_layout(x);
    const dims rows(x.shape.begin() + std::ptrdiff_t(axis), x.shape.end());
    if (std::any_of(rows.begin(), rows.end(), [](std::int64_t d) { return d < 0; }))
        im.unsupported("normalizing over an axis that follows the batch");
    nn::layer_norm_layer l;
    l.axis = int(axis);
    l.epsilon = float(im.attr_float("epsilon", 1e-5));
    auto to_tensor = [](std::vector<float> const& v) {
        nn::tensor1<float> t = nn::tensor1<float>::from_shape({v.size()});
        std::copy(v.begin(), v.end(), t.begin());
        return t;
    };
    const auto n = nn::kernels::element_count(rows);
    l.scale = im.has_input(1) ? to_tensor(spread_over(im, im.input_constant(1, "scale"), rows, "scale"))
                              : nn::tensor1<float>(std::array<std::size_t, 1>{n}, 1.0f);
    l.bias = im.has_input(2) ? to_tensor(spread_over(im, im.input_constant(2, "bias"), rows, "bias"))
                             : nn::tensor1<float>(std::array<std::size_t, 1>{n}, 0.0f);
    const float epsilon = l.epsilon;
    im.add(std::move(l), {x.node}, x.shape, x.perm);
    add_norm_statistics(im, x, axis, epsilon);
}

template <nn::reduce_op Op>
void convert_reduce(importer& im)
{
    const bool c = im.is_constant(0);
    const dims in = c ? im.input_constant(0, "input").shape : im.input_value(0, "input").shape;
    std::vector<std::int64_t> axes;
    const bool axes_input = im.opset() >= 13 && im.node().op_type() == "ReduceSum";
    if (axes_input) {
        if (im.has_input(1)) axes = im.input_ints(1, "axes");
    } else {
        axes = im.attr_ints("axes", {});
    }
    const bool keepdims = im.attr_int("keepdims", 1) != 0;
    if (axes.empty()) {
        if (axes_input && im.attr_int("noop_with_empty_axes", 0) != 0) {
            if (c) return im.set_output_constant(im.input_constant(0, "input"));
            return im.set_output(im.input_value(0, "input"));
        }
        for (std::size_t d = 0; d < in.size(); ++d) axes.push_back(std::int64_t(d));
    }
    std::vector<bool> reduced(in.size(), false);
    for (auto a : axes) reduced[std::size_t(normalized_axis(im, a, in.size()))] = true;
    dims shape;
    std::vector<std::size_t> renumber(in.size());
    for (std::size_t d = 0; d < in.size(); ++d) {
        if (!reduced[d])
            renumber[d] = shape.size(), shape.push_back(in[d]);
        else if (keepdims)
            renumber[d] = shape.size(), shape.push_back(1);
        if (reduced[d] && in[d] < 0) im.unsupported("reducing an axis that follows the batch is not supported");
    }
    if (c) {
        auto const& t = im.input_constant(0, "input");
        if (t.symbolic()) batch_unfollowable(im);
        std::vector<std::size_t> ax;
        for (std::size_t d = 0; d < in.size(); ++d)
            if (reduced[d]) ax.push_back(d);
        const auto r = nn::kernels::reduction_of(sizes_of(t), ax, keepdims);
        constant out = make_constant(shape, t.element_type);
        for (std::size_t k = 0; k < r.kept.size(); ++k) {
            double acc = Op == nn::reduce_op::max              ? -std::numeric_limits<double>::infinity()
                         : Op == nn::reduce_op::min            ? std::numeric_limits<double>::infinity()
                         : im.node().op_type() == "ReduceProd" ? 1.0
                                                               : 0.0;
            for (auto off : r.reduced) {
                const double v = t.values[r.kept[k] + off];
                if (Op == nn::reduce_op::max)
                    acc = std::max(acc, v);
                else if (Op == nn::reduce_op::min)
                    acc = std::min(acc, v);
                else if (im.node().op_type() == "ReduceProd")
                    acc *= v;
                else
                    acc += v;
            }
            if (Op == nn::reduce_op::mean) acc /= double(r.reduced.size());
            out.values[k] = as_element(acc, t.element_type);
        }
        return im.set_output_constant(std::move(out));
    }
    if (im.node().op_type() == "ReduceProd") im.unsupported("ReduceProd of a computed tensor is not supported");
    const auto x = im.input_held(0, "input");
    nn::reduce_layer l;
    l.op = Op;
    l.keepdims = keepdims;
    for (std::size_t d = 0; d < in.size(); ++d)
        if (reduced[d]) l.axes.push_back(x.physical_axis(d));
    std::sort(l.axes.begin(), l.axes.end());
    std::vector<std::size_t> perm;
    for (auto p : x.perm)
        if (keepdims || !reduced[p]) perm.push_back(renumber[p]);
    im.add(std::move(l), {x.node}, shape, perm);
}

inline void convert_reduce_sum(importer& im) { convert_reduce<nn::reduce_op::sum>(im); }
inline void convert_reduce_mean(importer& im) { convert_reduce<nn::reduce_op::mean>(im); }
inline void convert_reduce_max(importer& im) { convert_reduce<nn::reduce_op::max>(im); }
inline void convert_reduce_min(importer& im) { convert_reduce<nn::reduce_op::min>(im); }

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

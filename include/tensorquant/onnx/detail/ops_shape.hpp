// The operators that move elements without arithmetic, and the shape arithmetic exporters
// write: Identity, Dropout, Constant, Shape, Size, Cast, Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Concat, Split, Slice, Gather, Expand, ConstantOfShape, Range, Tile,
// Pad, ScatterND. On constants each folds (folding.hpp); on computed tensors each is a
// data-movement layer on the axes the network holds (a Transpose is only a change of
// layout).
#pragma once

#include "../../config.hpp"

#include "../../nn/kernels/layout.hpp"
#include "folding.hpp"
#include "importer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// ---- shared -------------------------------------------------------------------------------

// The readers of the node's first output all have one of these operators.
inline bool read_only_by(importer& im, std::initializer_list<std::string_view> ops)
{
    auto it = im.readers_of().find(im.node().output(0));
    if (it == im.readers_of().end() || it->second.empty()) return false;
    if (im.uses_of_output() != int(it->second.size())) return false; // a graph output too
    for (auto const* n : it->second)
        if (std::find(ops.begin(), ops.end(), n->op_type()) == ops.end()) return false;
    return true;
}

// The broadcast of two ONNX shapes (numpy's rule; k N only against k N or 1).
inline dims broadcast_dims(importer const& im, dims const& a, dims const& b)
{
    const std::size_t rank = std::max(a.size(), b.size());
    dims r(rank, 1);
    for (std::size_t k = 0; k < rank; ++k) {
        const std::int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1, db = k < b.size() ? b[b.size() - 1 - k] : 1;
        if (da != db && da != 1 && db != 1)
            im.malformed("shapes " + shape_text(a) + " and " + shape_text(b) + " do not broadcast");
        r[rank - 1 - k] = da == 1 ? db : da;
    }
    return r;
}

// v with `extra` axes of size 1 in front (ONNX's broadcasting of a lower rank): the same
// network tensor, whose missing leading axes broadcast.
inline value_info with_leading_axes(value_info v, std::size_t extra)
{
    if (extra == 0) return v;
    std::vector<std::size_t> perm;
    for (std::size_t i = 0; i < extra; ++i) perm.push_back(i);
    for (auto p : v.perm) perm.push_back(p + extra);
    v.shape.insert(v.shape.begin(), extra, 1);
    v.perm = std::move(perm);
    return v;
}

// c in the network's layout `perm` of a value of rank `rank` (c broadcast against it):
// leading axes of size 1 added, then the axes permuted.
inline nn::tensor<float> constant_in_layout(constant const& c, std::size_t rank, std::vector<std::size_t> const& perm)
{
    std::vector<std::size_t> shape(rank - std::min(rank, c.shape.size()), 1);
    for (auto d : c.shape) shape.push_back(std::size_t(d));
    nn::tensor<float> t = nn::tensor<float>::from_shape(shape);
    for (std::size_t i = 0; i < c.size(); ++i) t.data()[i] = float(c.values[i]);
    return nn::kernels::permuted(t, perm);
}

// The new shape of a Reshape of `from` to `target` (ONNX's 0 and -1), as dims.
inline dims reshaped_dims(importer const& im, dims const& from, constant const& target, bool allow_zero)
{
    dims out;
    int infer = -1;
    for (std::size_t i = 0; i < target.size(); ++i) {
        if (auto k = target.batch_factor(i)) {
            out.push_back(-k);
            continue;
        }
        const double v = target.values[i];
        if (v == 0 && !allow_zero) {
            if (i >= from.size()) im.malformed("a 0 in the target copies a dimension the input does not have");
            out.push_back(from[i]);
        } else if (v == -1) {
            if (infer >= 0) im.malformed("the target shape has more than one -1");
            infer = int(i);
            out.push_back(1);
        } else if (v < 0 || v != std::floor(v)) {
            im.malformed("the target shape holds " + std::to_string(v));
        } else {
            out.push_back(std::int64_t(v));
        }
    }
    const sym_size total = size_of(from), have = size_of(out);
    if (infer >= 0) {
        if (have.coef == 0 || total.power < have.power || total.coef % have.coef)
            im.malformed("the shape " + shape_text(from) + " does not reshape to " + shape_text(out) +
                         " with one inferred dimension");
        const auto d = as_dim({total.coef / have.coef, total.power - have.power});
        if (!d) batch_unfollowable(im);
        out[std::size_t(infer)] = *d;
    } else if (!(size_of(out) == total)) {
        im.malformed("the shape " + shape_text(from) + " does not reshape to " + shape_text(out));
    }
    return out;
}

// A reshape of a computed value to `shape` (ONNX's order of elements), in plain layout.
inline void add_reshape(importer& im, value_info const& x, dims shape)
{
    if (shape == x.shape && !x.flattened_chw) return im.set_output(x);
    const auto in = im.in_row_major(x);
    nn::reshape_layer l;
    l.shape = extents_of(shape);
    std::vector<int> inputs{in.node};
    if (std::count_if(l.shape.begin(), l.shape.end(), [](nn::extent const& e) { return e.per_batch; }) > 1)
        inputs.push_back(-1); // the batch from the network's input
    im.add(std::move(l), inputs, std::move(shape));
}

// A reshape of a constant.
inline constant reshaped_constant(constant const& c, dims shape)
{
    constant r = c;
    r.shape = std::move(shape);
    return r;
}

// [N, C, H, W] held as NHWC, flattened to [N, C H W]: the network keeps its H, W, C order (a
// flatten layer, no copy of elements moved), which a Gemm or MatMul reading it follows by
// permuting its weight rows; any other reader gets it in ONNX's order (importer::in_row_major).
inline bool flatten_held(importer& im, value_info const& x, dims const& out)
{
    if (x.rank() != 4 || out.size() != 2 || x.perm != channels_last_perm(4) || out[0] != x.shape[0] ||
        x.shape[1] <= 1 || x.shape[2] * x.shape[3] <= 1 || x.shape[1] < 0 || x.shape[2] < 0 || x.shape[3] < 0)
        return false;
    im.add(nn::flatten_layer{}, {x.node}, out, {}, std::array<std::int64_t, 3>{x.shape[1], x.shape[2], x.shape[3]});
    return true;
}

// ---- converters -----------------------------------------------------------------------

inline void convert_identity(importer& im)
{
    if (im.is_constant(0)) return im.set_output_constant(im.input_constant(0, "input"));
    im.set_output(im.input_any(0, "input"));
}

// Inference (or a ratio of 0): the identity, and a mask of ones.
inline void convert_dropout(importer& im)
{
    if (im.has_input(2)) {
        auto const& training = im.input_constant(2, "training_mode");
        const bool drops = im.has_input(1) &&
                           (im.input_constant(1, "ratio").size() != 1 || im.input_constant(1, "ratio").values[0] != 0);
        if (training.size() != 1 || (training.values[0] != 0 && drops))
            im.unsupported("training_mode = true with a ratio above 0 is not supported");
    }
    if (im.opset() < 7 && im.attr_int("is_test", 0) == 0) im.unsupported("is_test = 0 is not supported");
    convert_identity(im);
    if (im.uses_of_output(1) == 0) return;
    const dims shape = im.is_constant(0) ? im.input_constant(0, "input").shape : im.input_any(0, "input").shape;
    constant ones = make_constant({1}, ::onnx::TensorProto::BOOL);
    ones.values[0] = 1;
    if (std::any_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; }))
        return im.set_output(im.constant_value(ones, "the mask", shape), 1);
    constant mask = make_constant(shape, ::onnx::TensorProto::BOOL);
    for (auto& v : mask.values) v = 1;
    im.set_output_constant(std::move(mask), 1);
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

// The shape of the input (its ONNX shape; a dimension following the batch as k N).
inline void convert_shape(importer& im)
{
    dims shape;
    if (im.is_constant(0))
        shape = im.input_constant(0, "input").shape;
    else
        shape = im.input_any(0, "input").shape;
    const auto r = std::int64_t(shape.size());
    auto clampd = [&](std::int64_t v) { return std::min(std::max(v < 0 ? v + r : v, std::int64_t(0)), r); };
    const std::int64_t start = clampd(im.attr_int("start", 0)), end = clampd(im.attr_int("end", r));
    constant c = make_constant({std::max<std::int64_t>(end - start, 0)}, ::onnx::TensorProto::INT64);
    for (std::int64_t i = start; i < end; ++i)
        set_element(c, std::size_t(i - start),
                    shape[std::size_t(i)] < 0 ? sym_value{0, -shape[std::size_t(i)]}
                                              : sym_value{double(shape[std::size_t(i)]), 0});
    im.set_output_constant(std::move(c));
}

inline void convert_size(importer& im)
{
    const dims shape = im.is_constant(0) ? im.input_constant(0, "input").shape : im.input_any(0, "input").shape;
    const auto s = as_dim(size_of(shape));
    if (!s) batch_unfollowable(im);
    constant c = make_constant({}, ::onnx::TensorProto::INT64);
    set_element(c, 0, *s < 0 ? sym_value{0, -*s} : sym_value{double(*s), 0});
    im.set_output_constant(std::move(c));
}

inline void convert_cast(importer& im)
{
    const auto to = int(im.attr_int("to", 0));
    if (!::onnx::TensorProto_DataType_IsValid(to) || to == 0) im.malformed("attribute 'to' is not an element type");
    if (im.is_constant(0)) {
        auto const& c = im.input_constant(0, "input");
        if (c.symbolic() && !is_integer_type(to)) batch_unfollowable(im);
        return im.set_output_constant(fold_unary(c, to, [](sym_value s) { return s; }));
    }
    auto const& x = im.input_any(0, "input");
    if (x.integer && is_integer_type(to)) return im.set_output(x); // ids stay ids
    if (!is_float_type(to))
        im.unsupported("casting a computed tensor to " + element_type_name(to) +
                       " is not supported (the network computes in float)");
    if (to == ::onnx::TensorProto::FLOAT16 || to == ::onnx::TensorProto::BFLOAT16)
        im.unsupported("casting a computed tensor to " + element_type_name(to) +
                       " is not supported (quantize it with a minifloat map instead)");
    im.set_output(im.input_value(0, "input")); // float and double: the network's float
}

inline void convert_reshape(importer& im)
{
    const bool allow_zero = im.attr_int("allowzero", 0) != 0;
    auto const& target = im.input_constant(1, "shape");
    if (target.shape.size() != 1) im.malformed("the shape input is not 1-D");
    if (im.is_constant(0)) {
        auto const& c = im.input_constant(0, "input");
        auto shape = reshaped_dims(im, c.shape, target, allow_zero);
        for (auto d : shape)
            if (d < 0) batch_unfollowable(im);
        return im.set_output_constant(reshaped_constant(c, std::move(shape)));
    }
    auto const& x = im.input_value(0, "input");
    auto shape = reshaped_dims(im, x.shape, target, allow_zero);
    if (flatten_held(im, x, shape)) return;
    add_reshape(im, x, std::move(shape));
}

inline void convert_flatten(importer& im)
{
    const bool c = im.is_constant(0);
    const dims in = c ? im.input_constant(0, "input").shape : im.input_value(0, "input").shape;
    // axis in [-r, r]: the first axis of the second part
    auto axis_given = im.attr_int("axis", 1);
    if (axis_given < 0) axis_given += std::int64_t(in.size());
    if (axis_given < 0 || axis_given > std::int64_t(in.size()))
        im.malformed("axis " + std::to_string(im.attr_int("axis", 1)) + " is outside [-rank, rank]");
    const auto axis = std::size_t(axis_given);
    const auto outer = as_dim(size_of(in, 0, axis)), inner = as_dim(size_of(in, axis));
    if (!outer || !inner) batch_unfollowable(im);
    dims shape{*outer, *inner};
    if (c) return im.set_output_constant(reshaped_constant(im.input_constant(0, "input"), shape));
    auto const& x = im.input_value(0, "input");
    if (flatten_held(im, x, shape)) return;
    add_reshape(im, x, std::move(shape));
}

// The axes of Squeeze and Unsqueeze: the attribute before opset 13, the input from 13.
inline std::optional<std::vector<std::int64_t>> axes_of(importer& im, int input)
{
    if (im.opset() < 13) {
        if (!im.attribute("axes")) return std::nullopt;
        return im.attr_ints("axes", {});
    }
    if (!im.has_input(input)) return std::nullopt;
    return im.input_ints(input, "axes");
}

inline void convert_squeeze(importer& im)
{
    const bool c = im.is_constant(0);
    value_info x;
    if (!c) x = im.input_held(0, "input");
    const dims in = c ? im.input_constant(0, "input").shape : x.shape;
    std::vector<bool> drop(in.size(), false);
    if (auto axes = axes_of(im, 1)) {
        for (auto a : *axes) {
            const auto k = std::size_t(normalized_axis(im, a, in.size()));
            if (in[k] != 1) im.malformed("axis " + std::to_string(a) + " of " + shape_text(in) + " is not of size 1");
            drop[k] = true;
        }
    } else {
        for (std::size_t k = 0; k < in.size(); ++k) drop[k] = in[k] == 1;
    }
    dims out;
    std::vector<std::size_t> renumber(in.size());
    for (std::size_t k = 0; k < in.size(); ++k)
        if (!drop[k]) renumber[k] = out.size(), out.push_back(in[k]);
    if (c) return im.set_output_constant(reshaped_constant(im.input_constant(0, "input"), out));
    // the same elements: the held axes of size 1 go away
    std::vector<std::size_t> perm;
    for (auto p : x.perm)
        if (!drop[p]) perm.push_back(renumber[p]);
    nn::reshape_layer l;
    value_info shaped = x;
    shaped.shape = out;
    shaped.perm = perm;
    l.shape = extents_of(shaped.physical_shape());
    im.add(std::move(l), {x.node}, out, perm);
}

inline void convert_unsqueeze(importer& im)
{
    const bool c = im.is_constant(0);
    value_info x;
    if (!c) x = im.input_held(0, "input");
    const dims in = c ? im.input_constant(0, "input").shape : x.shape;
    auto axes = axes_of(im, 1);
    if (!axes) im.malformed("has no axes");
    const std::size_t rank = in.size() + axes->size();
    std::vector<bool> added(rank, false);
    for (auto a : *axes) {
        const auto k = std::size_t(normalized_axis(im, a, rank));
        if (added[k]) im.malformed("axis " + std::to_string(a) + " is given twice");
        added[k] = true;
    }
    dims out;
    std::vector<std::size_t> old_to_new;
    for (std::size_t k = 0, j = 0; k < rank; ++k) {
        if (added[k]) {
            out.push_back(1);
        } else {
            old_to_new.push_back(k);
            out.push_back(in[j++]);
        }
    }
    if (c) return im.set_output_constant(reshaped_constant(im.input_constant(0, "input"), out));
    // held axes: the old ones in their order, each new one right after the axis before it
    std::vector<std::size_t> perm;
    for (auto p : x.perm) perm.push_back(old_to_new[p]);
    for (std::size_t k = 0; k < rank; ++k)
        if (added[k]) {
            auto at = k == 0 ? perm.begin() : std::find(perm.begin(), perm.end(), k - 1) + 1;
            perm.insert(at, k);
        }
    value_info shaped;
    shaped.shape = out;
    shaped.perm = perm;
    nn::reshape_layer l;
    l.shape = extents_of(shaped.physical_shape());
    im.add(std::move(l), {x.node}, out, perm);
}

inline void convert_transpose(importer& im)
{
    const bool c = im.is_constant(0);
    const std::size_t rank = c ? im.input_constant(0, "input").shape.size() : im.input_value(0, "input").rank();
    std::vector<std::int64_t> def(rank);
    for (std::size_t i = 0; i < rank; ++i) def[i] = std::int64_t(rank - 1 - i);
    const auto t = im.attr_ints("perm", def);
    std::vector<std::size_t> perm;
    std::vector<bool> seen(rank, false);
    if (t.size() != rank)
        im.malformed("perm has " + std::to_string(t.size()) + " axes for rank " + std::to_string(rank));
    for (auto a : t) {
        if (a < 0 || a >= std::int64_t(rank) || seen[std::size_t(a)]) im.malformed("perm is not a permutation");
        seen[std::size_t(a)] = true;
        perm.push_back(std::size_t(a));
    }
    if (c) {
        auto const& k = im.input_constant(0, "input");
        return im.set_output_constant(picked(k, nn::kernels::permuted(index_tensor(k), perm)));
    }
    // only the layout changes: the network's axis p holds new axis inverse[old perm[p]]
    const value_info x = im.input_held(0, "input");
    const auto inverse = nn::kernels::inverse_permutation(perm);
    value_info y = x;
    for (std::size_t i = 0; i < rank; ++i) y.shape[i] = x.shape[perm[i]];
    for (std::size_t p = 0; p < rank; ++p) y.perm[p] = inverse[x.perm[p]];
    im.set_output(std::move(y));
}

inline void convert_concat(importer& im)
{
    const int parts = im.node().input_size();
    if (parts == 0) im.malformed("has no inputs");
    if (im.all_constant()) {
        auto const& first = im.input_constant(0, "input");
        const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), first.shape.size()));
        dims shape = first.shape;
        shape[axis] = 0;
        for (int k = 0; k < parts; ++k) {
            auto const& p = im.input_constant(k, "input");
            dims a = p.shape, b = first.shape;
            if (a.size() != b.size()) im.malformed("the inputs differ in rank");
            a[axis] = b[axis] = 0;
            if (a != b) im.malformed("the inputs' shapes differ outside the axis");
            shape[axis] += p.shape[axis];
        }
        std::size_t outer = 1, inner = 1;
        for (std::size_t d = 0; d < axis; ++d) outer *= std::size_t(shape[d]);
        for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= std::size_t(shape[d]);
        constant r = make_constant(shape, first.element_type);
        std::size_t at = 0;
        for (std::size_t o = 0; o < outer; ++o)
            for (int k = 0; k < parts; ++k) {
                auto const& p = im.input_constant(k, "input");
                const std::size_t run = std::size_t(p.shape[axis]) * inner;
                for (std::size_t j = 0; j < run; ++j) set_element(r, at++, element_of(p, o * run + j));
            }
        return im.set_output_constant(std::move(r));
    }
    // the layout of the first computed input
    value_info lead;
    for (int k = 0; k < parts && lead.shape.empty(); ++k)
        if (!im.is_constant(k)) lead = im.input_held(k, "input");
    const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), lead.rank()));
    std::vector<int> inputs;
    dims shape = lead.shape;
    sym_size along{0, lead.shape[axis] < 0 ? 1 : 0};
    for (int k = 0; k < parts; ++k) {
        if (!im.has_input(k)) continue;
        const auto v = im.in_layout(im.input_activation(k, "input"), lead.perm);
        if (v.rank() != lead.rank()) im.malformed("the inputs differ in rank");
        for (std::size_t d = 0; d < v.rank(); ++d)
            if (d != axis && v.shape[d] != lead.shape[d])
                im.malformed("the inputs' shapes " + shape_text(lead.shape) + " and " + shape_text(v.shape) +
                             " differ outside axis " + std::to_string(axis));
        const auto s = size_of({v.shape[axis]});
        if (s.coef && along.coef && s.power != along.power) batch_unfollowable(im);
        along.coef += s.coef;
        if (s.coef) along.power = s.power;
        inputs.push_back(v.node);
    }
    const auto d = as_dim(along);
    if (!d) batch_unfollowable(im);
    shape[axis] = *d;
    im.add(nn::concat_layer{int(lead.physical_axis(axis))}, inputs, shape, lead.perm);
}

// The slices of one axis as the node's outputs.
inline void convert_split(importer& im)
{
    const int outputs = im.node().output_size();
    const bool c = im.is_constant(0);
    const dims in = c ? im.input_constant(0, "input").shape : im.input_value(0, "input").shape;
    const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), in.size()));
    if (in[axis] < 0) im.unsupported("splitting the batch axis is not supported");
    std::vector<std::int64_t> sizes;
    if (im.opset() >= 13 && im.has_input(1))
        sizes = im.input_ints(1, "split");
    else if (im.opset() < 13)
        sizes = im.attr_ints("split", {});
    if (sizes.empty()) {
        if (outputs < 1 || in[axis] % outputs) im.malformed("the axis does not split into equal parts");
        sizes.assign(std::size_t(outputs), in[axis] / outputs);
    }
    if (std::int64_t(sizes.size()) != outputs ||
        std::accumulate(sizes.begin(), sizes.end(), std::int64_t(0)) != in[axis])
        im.malformed("the split sizes do not fill the axis");
    std::int64_t start = 0;
    value_info x;
    if (!c) x = im.input_held(0, "input");
    for (int k = 0; k < outputs; ++k) {
        const std::int64_t end = start + sizes[std::size_t(k)];
        if (!im.node().output(k).empty()) {
            dims shape = in;
            shape[axis] = sizes[std::size_t(k)];
            if (c) {
                auto const& t = im.input_constant(0, "input");
                auto idx = nn::kernels::sliced(index_tensor(t), {axis}, {{start, end, 1}});
                im.set_output_constant(picked(t, idx), k);
            } else {
                nn::slice_layer l{{x.physical_axis(axis)}, {{start, end, 1}}};
                value_info y = x;
                y.node = im.add_layer(std::move(l), {x.node}, "_" + std::to_string(k));
                y.shape = shape;
                im.set_output(std::move(y), k);
            }
        }
        start = end;
    }
}

inline void convert_slice(importer& im)
{
    const bool c = im.is_constant(0);
    value_info x;
    if (!c) x = im.input_held(0, "input");
    const dims in = c ? im.input_constant(0, "input").shape : x.shape;
    std::vector<std::int64_t> starts, ends, axes, steps;
    if (im.opset() < 10) {
        starts = im.attr_ints("starts", {});
        ends = im.attr_ints("ends", {});
        axes = im.attr_ints("axes", {});
    } else {
        starts = im.input_ints(1, "starts");
        ends = im.input_ints(2, "ends");
        if (im.has_input(3)) axes = im.input_ints(3, "axes");
        if (im.has_input(4)) steps = im.input_ints(4, "steps");
    }
    if (axes.empty())
        for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(std::int64_t(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
        im.malformed("starts, ends, axes and steps differ in length");
    dims shape = in;
    std::vector<std::size_t> held;
    std::vector<nn::kernels::slice_axis> ranges;
    std::vector<std::vector<std::size_t>> picks;
    std::vector<bool> seen(in.size(), false);
    for (std::size_t k = 0; k < starts.size(); ++k) {
        const auto a = std::size_t(normalized_axis(im, axes[k], in.size()));
        if (seen[a]) im.malformed("axis " + std::to_string(axes[k]) + " is sliced twice");
        seen[a] = true;
        if (steps[k] == 0) im.malformed("a step of 0");
        const nn::kernels::slice_axis r{starts[k], ends[k], steps[k]};
        if (in[a] < 0) { // an axis following the batch: only whole
            if (r.start == 0 && r.step == 1 && r.end >= std::numeric_limits<std::int32_t>::max()) continue;
            im.unsupported("slicing the axis of size " + dim_text(in[a]) + " (it follows the batch) is not supported");
        }
        shape[a] = std::int64_t(nn::kernels::slice_indices(r, in[a]).size());
        held.push_back(c ? a : x.physical_axis(a));
        ranges.push_back(r);
    }
    if (c) {
        auto const& t = im.input_constant(0, "input");
        return im.set_output_constant(picked(t, nn::kernels::sliced(index_tensor(t), held, ranges)));
    }
    if (shape == in) return im.set_output(x);
    im.add(nn::slice_layer{held, ranges}, {x.node}, shape, x.perm);
}

inline void convert_gather(importer& im)
{
    const bool data_constant = im.is_constant(0), indices_constant = im.is_constant(1);
    if (data_constant && indices_constant) {
        auto const& d = im.input_constant(0, "data");
        auto const& i = im.input_constant(1, "indices");
        const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), d.shape.size()));
        const auto idx = im.input_ints(1, "indices");
        try {
            auto moved = nn::kernels::gathered(index_tensor(d), axis, idx, sizes_of(i));
            return im.set_output_constant(picked(d, moved));
        } catch (shape_error const& e) {
            im.malformed(e.what());
        }
    }
    if (!data_constant && !indices_constant) im.unsupported("gathering computed data at computed indices");
    if (indices_constant) {
        value_info x = im.input_held(0, "data");
        const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), x.rank()));
        if (x.shape[axis] < 0) im.unsupported("gathering along the batch axis is not supported");
        auto const& ic = im.input_constant(1, "indices");
        const auto idx = im.input_ints(1, "indices");
        for (auto v : idx)
            if (v < -x.shape[axis] || v >= x.shape[axis])
                im.malformed("index " + std::to_string(v) + " is outside an axis of " + std::to_string(x.shape[axis]));
        if (ic.shape.size() > 1) x = im.in_plain_layout(x);
        dims shape(x.shape.begin(), x.shape.begin() + std::ptrdiff_t(axis));
        shape.insert(shape.end(), ic.shape.begin(), ic.shape.end());
        shape.insert(shape.end(), x.shape.begin() + std::ptrdiff_t(axis) + 1, x.shape.end());
        std::vector<std::size_t> perm;
        if (ic.shape.size() == 1) {
            perm = x.perm;
        } else if (ic.shape.empty()) { // the axis goes away
            for (auto p : x.perm)
                if (p != axis) perm.push_back(p > axis ? p - 1 : p);
        }
        nn::gather_layer l{x.physical_axis(axis), idx, sizes_of(ic)};
        return void(im.add(std::move(l), {x.node}, shape, perm));
    }
    // a constant table at computed indices: embeddings
    auto const& table = im.input_constant(0, "data");
    const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", 0), table.shape.size()));
    auto const& ids = im.input_any(1, "indices");
    if (ids.codes) im.unsupported("the indices are QDQ codes");
    const auto in = im.in_plain_layout(ids);
    nn::embedding_layer l;
    l.table = nn::tensor<float>::from_shape(sizes_of(table));
    for (std::size_t k = 0; k < table.size(); ++k) l.table.data()[k] = float(table.values[k]);
    l.axis = axis;
    dims shape(table.shape.begin(), table.shape.begin() + std::ptrdiff_t(axis));
    shape.insert(shape.end(), in.shape.begin(), in.shape.end());
    shape.insert(shape.end(), table.shape.begin() + std::ptrdiff_t(axis) + 1, table.shape.end());
    im.add(std::move(l), {in.node}, shape);
}

inline void convert_expand(importer& im)
{
    auto const& target = im.input_constant(1, "shape");
    dims want;
    for (std::size_t k = 0; k < target.size(); ++k)
        want.push_back(target.batch_factor(k) ? -target.batch_factor(k) : std::int64_t(target.values[k]));
    if (im.is_constant(0)) {
        auto const& c = im.input_constant(0, "input");
        const dims shape = broadcast_dims(im, c.shape, want);
        if (std::any_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; })) {
            // a constant repeated over the batch: a constant layer
            auto v = im.constant_value(c, im.input_name(0), shape);
            return im.set_output(std::move(v));
        }
        nn::tensor<double> idx = index_tensor(c);
        return im.set_output_constant(
            picked(c, nn::kernels::expanded(idx, std::vector<std::size_t>(shape.begin(), shape.end()))));
    }
    const auto x = im.input_held(0, "input");
    const dims shape = broadcast_dims(im, x.shape, want);
    if (shape == x.shape) return im.set_output(x);
    const auto wide = with_leading_axes(x, shape.size() - x.rank());
    value_info out = wide;
    out.shape = shape;
    nn::expand_layer l;
    l.shape = extents_of(out.physical_shape());
    std::vector<int> inputs{x.node};
    if (nn::kernels::needs_batch(l.shape)) inputs.push_back(-1);
    im.add(std::move(l), inputs, shape, out.perm);
}

inline void convert_constant_of_shape(importer& im)
{
    auto const& target = im.input_constant(0, "shape");
    constant value = make_constant({1}, ::onnx::TensorProto::FLOAT);
    if (auto const* a = im.attribute("value")) {
        value = to_constant(a->t(), im.where() + ": value");
        if (value.size() != 1) im.malformed("the value is not one element");
        value.shape = {1};
    }
    dims shape;
    for (std::size_t k = 0; k < target.size(); ++k)
        shape.push_back(target.batch_factor(k) ? -target.batch_factor(k) : std::int64_t(target.values[k]));
    if (std::any_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; }))
        return im.set_output(im.constant_value(value, im.node().output(0), shape));
    constant r = make_constant(shape, value.element_type);
    for (auto& v : r.values) v = value.values[0];
    im.set_output_constant(std::move(r));
}

inline void convert_range(importer& im)
{
    auto scalar = [&](int k, char const* role) {
        auto const& c = im.input_constant(k, role);
        if (c.size() != 1) im.malformed(std::string(role) + " is not a scalar");
        if (c.symbolic()) batch_unfollowable(im);
        return c;
    };
    const auto start = scalar(0, "start"), limit = scalar(1, "limit"), delta = scalar(2, "delta");
    if (delta.values[0] == 0) im.malformed("delta is 0");
    const double count = std::max(std::ceil((limit.values[0] - start.values[0]) / delta.values[0]), 0.0);
    if (count > 1e8) im.unsupported("a range of more than 10^8 elements");
    constant r = make_constant({std::int64_t(count)}, start.element_type);
    for (std::size_t i = 0; i < r.size(); ++i)
        r.values[i] = as_element(start.values[0] + double(i) * delta.values[0], r.element_type);
    im.set_output_constant(std::move(r));
}

inline void convert_tile(importer& im)
{
    if (!im.is_constant(0)) im.unsupported("Tile of a computed tensor is not supported");
    auto const& c = im.input_constant(0, "input");
    const auto repeats = im.input_ints(1, "repeats");
    if (repeats.size() != c.shape.size()) im.malformed("repeats do not match the input's rank");
    dims shape = c.shape;
    std::vector<std::size_t> target;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (repeats[d] < 0) im.malformed("a negative repeat");
        shape[d] *= repeats[d];
        target.push_back(std::size_t(shape[d]));
    }
    constant r = make_constant(shape, c.element_type);
    // element (i_0, ...) of the result is element (i_0 mod d_0, ...) of the input
    std::vector<std::size_t> index(shape.size(), 0);
    for (std::size_t o = 0; o < r.size(); ++o) {
        std::size_t from = 0;
        for (std::size_t d = 0; d < shape.size(); ++d)
            from = from * std::size_t(c.shape[d]) + index[d] % std::size_t(c.shape[d]);
        set_element(r, o, element_of(c, from));
        for (std::size_t d = shape.size(); d-- > 0;) {
            if (++index[d] < target[d]) break;
            index[d] = 0;
        }
    }
    im.set_output_constant(std::move(r));
}

inline void convert_pad(importer& im)
{
    const std::string mode_name = im.attr_string("mode", "constant");
    const auto mode = std::find(nn::pad_mode_names.begin(), nn::pad_mode_names.end(), mode_name);
    if (mode == nn::pad_mode_names.end())
        im.unsupported("mode '" + mode_name + "' is not supported (constant, reflect and edge are)");
    const auto pm = nn::pad_mode(mode - nn::pad_mode_names.begin());
    std::vector<std::int64_t> pads;
    double value = 0;
    if (im.opset() < 11) {
        pads = im.attr_ints("pads", {});
        value = im.attr_float("value", 0.0);
    } else {
        pads = im.input_ints(1, "pads");
        if (im.has_input(2)) {
            auto const& v = im.input_constant(2, "constant_value");
            if (v.size() != 1) im.malformed("the constant value is not one element");
            value = v.values[0];
        }
    }
    const bool c = im.is_constant(0);
    const dims in = c ? im.input_constant(0, "input").shape : im.input_value(0, "input").shape;
    if (pads.size() != 2 * in.size())
        im.malformed("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(in.size()));
    std::vector<std::int64_t> begins(pads.begin(), pads.begin() + std::ptrdiff_t(in.size())),
        ends(pads.begin() + std::ptrdiff_t(in.size()), pads.end());
    dims shape = in;
    for (std::size_t d = 0; d < in.size(); ++d) {
        if (in[d] < 0) {
            if (begins[d] || ends[d]) im.unsupported("padding the batch axis is not supported");
            continue;
        }
        shape[d] += begins[d] + ends[d];
        if (shape[d] < 0) im.malformed("the pads remove more than the axis holds");
    }
    if (c) {
        auto const& t = im.input_constant(0, "input");
        nn::tensor<double> idx;
        try {
            idx = nn::kernels::padded(index_tensor(t), begins, ends, pm, -1.0);
        } catch (shape_error const& e) {
            im.malformed(e.what());
        }
        constant r = make_constant(shape, t.element_type);
        for (std::size_t i = 0; i < r.size(); ++i)
            set_element(r, i, idx.data()[i] < 0 ? sym_value{value, 0} : element_of(t, std::size_t(idx.data()[i])));
        return im.set_output_constant(std::move(r));
    }
    auto x = im.input_value(0, "input");
    // zeros around an image that only convolutions and counting average pools read: their padding
    const bool spatial_zeros = pm == nn::pad_mode::constant && value == 0 && in.size() == 4 && !begins[0] && !ends[0] &&
                               !begins[1] && !ends[1] &&
                               std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p >= 0; });
    if (spatial_zeros && !x.flattened_chw && read_only_by(im, {"Conv", "AveragePool"})) {
        bool pools_count = true;
        for (auto const* n : im.readers_of()[im.node().output(0)])
            if (n->op_type() == "AveragePool") {
                for (auto const& a : n->attribute())
                    if ((a.name() == "pads" &&
                         std::any_of(a.ints().begin(), a.ints().end(), [](auto p) { return p != 0; })) ||
                        (a.name() == "auto_pad" && a.s() != "NOTSET" && a.s() != "VALID"))
                        pools_count = false;
            }
        if (pools_count) {
            value_info y = x;
            y.zero_pads = std::array<int, 4>{int(begins[2]), int(ends[2]), int(begins[3]), int(ends[3])};
            return im.set_output(std::move(y));
        }
    }
    if (x.flattened_chw) x = im.in_row_major(x);
    nn::pad_layer l;
    l.mode = pm;
    l.value = float(value);
    l.begins.assign(in.size(), 0);
    l.ends.assign(in.size(), 0);
    for (std::size_t d = 0; d < in.size(); ++d) {
        l.begins[x.physical_axis(d)] = begins[d];
        l.ends[x.physical_axis(d)] = ends[d];
    }
    im.add(std::move(l), {x.node}, shape, x.perm);
}

// ScatterND on constants (window attention's masks): data with updates written at indices.
inline void convert_scatter_nd(importer& im)
{
    if (!im.all_constant()) im.unsupported("ScatterND of computed tensors is not supported");
    if (im.attr_string("reduction", "none") != "none") im.unsupported("ScatterND with a reduction is not supported");
    auto const& data = im.input_constant(0, "data");
    auto const& upd = im.input_constant(2, "updates");
    auto const& ic = im.input_constant(1, "indices");
    const auto idx = im.input_ints(1, "indices");
    if (ic.shape.empty()) im.malformed("the indices are a scalar");
    const auto k = std::size_t(ic.shape.back());
    if (k > data.shape.size()) im.malformed("the indices are longer than the data's rank");
    std::size_t slice = 1;
    for (std::size_t d = k; d < data.shape.size(); ++d) slice *= std::size_t(data.shape[d]);
    const std::size_t count = k ? idx.size() / k : 0;
    if (upd.size() != count * slice) im.malformed("the updates do not fit the indices");
    constant r = data;
    for (std::size_t u = 0; u < count; ++u) {
        std::size_t at = 0;
        for (std::size_t d = 0; d < k; ++d) {
            auto i = idx[u * k + d];
            if (i < 0) i += data.shape[d];
            if (i < 0 || i >= data.shape[d]) im.malformed("an index is outside the data");
            at = at * std::size_t(data.shape[d]) + std::size_t(i);
        }
        for (std::size_t j = 0; j < slice; ++j) set_element(r, at * slice + j, element_of(upd, u * slice + j));
    }
    im.set_output_constant(std::move(r));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

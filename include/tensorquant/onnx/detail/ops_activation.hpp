// Element-wise functions (Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf, Gelu,
// Sqrt, Reciprocal, Neg, Abs, Clip) on tensors of any rank, fused into the layer before
// where that layer can end in one, and Softmax / LogSoftmax on any axis. On constants they
// fold.
#pragma once

#include "../../config.hpp"

#include "folding.hpp"
#include "importer.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <variant>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// An element-wise function. Right after a layer that can end in one (a member `act`:
// conv2d, dense, batch norm, the element-wise and matrix products) whose output nothing else
// reads, a function with an intrinsic form is fused into that layer, as the library's
// layers (and hardware datapaths) apply it: one layer, one scope, the result quantized
// once. Otherwise it is a layer of its own, in its input's shape and layout.
inline void add_activation(importer& im, nn::activation_fn f)
{
    if (im.is_constant(0)) {
        auto const& c = im.input_constant(0, "input");
        if (c.symbolic()) batch_unfollowable(im);
        return im.set_output_constant(fold_unary(c, c.element_type, [&](sym_value x) {
            return sym_value{nn::kernels::activate_double(x.v, f), 0};
        }));
    }
    auto const& x = im.input_value(0, "input");
    if (x.node >= 0 && !x.dequantized && std::size_t(x.node) + 1 == im.net().nodes().size() &&
        im.uses().at(im.input_name(0)) == 1 && nn::info_of(f.kind).fusable) {
        auto& op = im.net().layer_at(im.net().nodes()[std::size_t(x.node)].name);
        const bool fused = std::visit(
            [&](auto& l) {
                if constexpr (nn::fuses_activation<std::decay_t<decltype(l)>>) {
                    if (l.act != nn::activation::none) return false;
                    l.act = f;
                    return true;
                }
                return false;
            },
            op);
        if (fused) return im.set_output(x);
    }
    nn::activation_layer l;
    l.act = f;
    im.add(l, {x.node}, x.shape, x.perm, x.flattened_chw);
}

template <nn::activation A>
void convert_activation(importer& im)
{
    add_activation(im, nn::activation_fn(A));
}

inline void convert_leaky_relu(importer& im)
{
    add_activation(im, nn::activation_fn(nn::activation::leaky_relu, im.attr_float("alpha", 0.01)));
}

inline void convert_hard_sigmoid(importer& im)
{
    add_activation(
        im, nn::activation_fn(nn::activation::hard_sigmoid, im.attr_float("alpha", 0.2), im.attr_float("beta", 0.5)));
}

// Gelu as opset 20 defines it (approximate "none" or "tanh"); also what the importer makes
// of the Erf pattern exporters write (patterns.hpp).
inline void convert_gelu(importer& im)
{
    const std::string approximate = im.attr_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh") im.malformed("approximate is neither 'none' nor 'tanh'");
    add_activation(im, nn::activation_fn(approximate == "none" ? nn::activation::gelu : nn::activation::gelu_tanh));
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
    if (im.is_constant(0)) {
        auto const& c = im.input_constant(0, "input");
        return im.set_output_constant(fold_unary(c, c.element_type, [&](sym_value x) {
            if (x.n) batch_unfollowable(im);
            return sym_value{std::min(std::max(x.v, lo), hi), 0};
        }));
    }
    if (lo == -inf && hi == inf) return im.set_output(im.input_value(0, "input")); // no bounds: the identity
    if (lo == 0 && hi == 6) return add_activation(im, nn::activation::relu6);
    if (lo == 0 && hi == inf) return add_activation(im, nn::activation::relu);
    auto const& x = im.input_value(0, "input");
    if (!(lo <= hi)) im.unsupported("Clip to [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: min above max");
    nn::clip_layer l; // any other bounds: a layer of its own (float bounds, as ONNX's)
    l.lo = float(lo);
    l.hi = float(hi);
    im.add(l, {x.node}, x.shape, x.perm, x.flattened_chw);
}

template <bool Log>
void convert_softmax(importer& im)
{
    if (im.is_constant(0)) im.unsupported("softmax of a constant is not supported");
    auto x = im.input_held(0, "input");
    const auto axis = std::size_t(normalized_axis(im, im.attr_int("axis", im.opset() < 13 ? 1 : -1), x.rank()));
    nn::softmax_layer l;
    l.log = Log;
    if (im.opset() < 13 && axis + 1 < x.rank()) {
        // the axes from `axis` on, taken together: held last and in order
        bool trailing = true;
        for (std::size_t p = axis; p < x.rank(); ++p) trailing = trailing && x.perm[p] == p;
        if (!trailing) x = im.in_plain_layout(x);
        l.axis = int(axis);
        l.trailing = true;
    } else {
        l.axis = int(x.physical_axis(axis));
    }
    if (x.shape[axis] < 0) im.unsupported("softmax along the batch axis is not supported");
    im.add(l, {x.node}, x.shape, x.perm);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

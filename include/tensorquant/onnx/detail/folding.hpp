// Constant folding: evaluating at import the nodes whose inputs are all constants (the
// shape arithmetic exporters write: Shape, Gather, Slice, Concat, Cast, Unsqueeze,
// Equal, Where, ... and weights computed from initializers). Values are computed in double
// and rounded to the result's element type, which for + - * / and the square root of
// float32 operands is the float32 result. A value that follows the batch size (k N, from
// the Shape of the model's input) is carried through the operations that keep it one.
#pragma once

#include "../../config.hpp"

#include "../../nn/kernels/broadcast.hpp"
#include "importer.hpp"
#include "tensor.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// One element of a folded constant: the value, or n N when n > 0.
struct sym_value
{
    double v = 0;
    std::int64_t n = 0;
};

inline sym_value element_of(constant const& c, std::size_t i) { return {c.values[i], c.batch_factor(i)}; }

inline std::vector<std::size_t> sizes_of(constant const& c)
{
    return std::vector<std::size_t>(c.shape.begin(), c.shape.end());
}

// An empty constant of the shape and type, with room for a batch factor per element.
inline constant make_constant(dims shape, int type)
{
    constant c;
    c.shape = std::move(shape);
    c.element_type = type;
    std::size_t n = 1;
    for (auto d : c.shape) n *= std::size_t(d);
    c.values.assign(n, 0.0);
    return c;
}

inline void set_element(constant& c, std::size_t i, sym_value s)
{
    if (s.n) {
        if (c.per_batch.empty()) c.per_batch.assign(c.size(), 0);
        c.per_batch[i] = s.n;
        c.values[i] = 0;
    } else {
        c.values[i] = as_element(s.v, c.element_type);
        if (!c.per_batch.empty()) c.per_batch[i] = 0;
    }
}

// fn(a, b) with numpy broadcasting; the result has element type `type`.
template <class Fn>
constant fold_binary(importer const& im, constant const& a, constant const& b, int type, Fn fn)
{
    nn::kernels::broadcast_plan p;
    try {
        p = nn::kernels::broadcast_shapes(sizes_of(a), sizes_of(b), "the inputs");
    } catch (shape_error const& e) {
        im.malformed(e.what());
    }
    constant r = make_constant(dims(p.shape.begin(), p.shape.end()), type);
    nn::kernels::for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t ib) {
        set_element(r, i, fn(element_of(a, ia), element_of(b, ib)));
    });
    return r;
}

template <class Fn>
constant fold_unary(constant const& a, int type, Fn fn)
{
    constant r = make_constant(a.shape, type);
    for (std::size_t i = 0; i < a.size(); ++i) set_element(r, i, fn(element_of(a, i)));
    return r;
}

// The elements of c at the given indices, in a constant of the given shape.
inline constant pick(constant const& c, std::vector<std::size_t> const& from, dims shape)
{
    constant r = make_constant(std::move(shape), c.element_type);
    for (std::size_t i = 0; i < from.size(); ++i) set_element(r, i, element_of(c, from[i]));
    return r;
}

// The row-major indices of a tensor of this shape, as a tensor the layout kernels can move.
inline nn::tensor<double> index_tensor(constant const& c)
{
    nn::tensor<double> t = nn::tensor<double>::from_shape(sizes_of(c));
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = double(i);
    return t;
}
inline constant picked(constant const& c, nn::tensor<double> const& moved)
{
    std::vector<std::size_t> from(moved.size());
    for (std::size_t i = 0; i < from.size(); ++i) from[i] = std::size_t(moved.data()[i]);
    return pick(c, from, dims(moved.shape().begin(), moved.shape().end()));
}

// A batch-dependent value that an operation cannot follow.
[[noreturn]] inline void batch_unfollowable(importer const& im)
{
    im.unsupported("the value depends on the batch size (which the model leaves open) in a way the importer "
                   "cannot follow");
}

inline bool nonzero(importer const& im, sym_value s)
{
    if (s.n) return true; // N >= 1
    (void)im;
    return s.v != 0;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail

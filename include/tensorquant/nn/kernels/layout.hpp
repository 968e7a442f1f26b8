// Moving elements without arithmetic: permuting axes, sizes that follow the batch, slices
// and gathers. Shared by the data-movement layers and their training ops.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"
#include "geometry.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// A size as a layer stores it: fixed, or a multiple of the batch size N (the first
// dimension of the network's input, which such a layer reads as its last input).
struct extent
{
    std::int64_t size = 1;
    bool per_batch = false;
    friend bool operator==(extent const&, extent const&) = default;
};

namespace kernels {

inline bool needs_batch(std::vector<extent> const& e)
{
    return std::any_of(e.begin(), e.end(), [](extent const& x) { return x.per_batch; });
}

// The batch size a layer reads from its input x (a tensor, or a variable of a tape).
template <class Ctx, class X>
std::size_t batch_of(Ctx& ctx, X const& x)
{
    if constexpr (requires { ctx.tape(); }) {
        auto const& v = ctx.tape().value(x);
        return v.dimension() ? v.shape(0) : 1;
    } else {
        return x.dimension() ? x.shape(0) : 1;
    }
}

inline std::vector<std::size_t> resolve(std::vector<extent> const& e, std::size_t batch)
{
    std::vector<std::size_t> r;
    for (auto const& x : e) r.push_back(std::size_t(x.size) * (x.per_batch ? batch : 1));
    return r;
}

template <class S>
std::size_t element_count(S const& shape)
{
    std::size_t n = 1;
    for (auto d : shape) n *= std::size_t(d);
    return n;
}

// y = x with its axes permuted: axis i of y is axis perm[i] of x.
template <class V, class S>
void permute(V const* x, S const& shape, std::vector<std::size_t> const& perm, V* y)
{
    const std::size_t rank = perm.size(), total = element_count(shape);
    if (total == 0) return;
    if (rank == 0) {
        *y = *x;
        return;
    }
    std::vector<std::size_t> in_stride(rank), out_shape(rank), stride(rank);
    std::size_t step = 1;
    for (std::size_t d = rank; d-- > 0;) in_stride[d] = step, step *= std::size_t(shape[d]);
    for (std::size_t i = 0; i < rank; ++i) out_shape[i] = std::size_t(shape[perm[i]]), stride[i] = in_stride[perm[i]];
    std::vector<std::size_t> index(rank, 0);
    const std::size_t inner = out_shape[rank - 1], s = stride[rank - 1];
    std::size_t at = 0;
    for (std::size_t o = 0; o < total; o += inner) {
        for (std::size_t j = 0; j < inner; ++j) y[o + j] = x[at + j * s];
        for (std::size_t d = rank - 1; d-- > 0;) {
            if (++index[d] < out_shape[d]) {
                at += stride[d];
                break;
            }
            at -= (out_shape[d] - 1) * stride[d];
            index[d] = 0;
        }
    }
}

template <class V>
tensor<V> permuted(tensor<V> const& x, std::vector<std::size_t> const& perm)
{
    if (perm.size() != x.dimension())
        throw shape_error("transpose: a permutation of " + std::to_string(perm.size()) +
                          " axes for a tensor of shape " + shape_string(x.shape()));
    std::vector<std::size_t> shape;
    for (auto p : perm) shape.push_back(x.shape(p));
    tensor<V> y = tensor<V>::from_shape(shape);
    permute(x.data(), x.shape(), perm, y.data());
    return y;
}

inline std::vector<std::size_t> inverse_permutation(std::vector<std::size_t> const& perm)
{
    std::vector<std::size_t> inv(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = i;
    return inv;
}

// One axis of a slice, ONNX's rule: start and end clamped to the axis, a negative one
// counted from the end, a negative step walking backwards.
struct slice_axis
{
    std::int64_t start = 0, end = 0, step = 1;
};
inline std::vector<std::size_t> slice_indices(slice_axis a, std::int64_t dim)
{
    auto clamp = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) { return std::min(std::max(v, lo), hi); };
    std::int64_t s = a.start < 0 ? a.start + dim : a.start, e = a.end < 0 ? a.end + dim : a.end;
    std::vector<std::size_t> r;
    if (a.step > 0) {
        s = clamp(s, 0, dim), e = clamp(e, 0, dim);
        for (std::int64_t i = s; i < e; i += a.step) r.push_back(std::size_t(i));
    } else {
        s = clamp(s, 0, dim - 1), e = clamp(e, -1, dim - 1);
        for (std::int64_t i = s; i > e; i += a.step) r.push_back(std::size_t(i));
    }
    return r;
}

// The elements of x at the given indices of each axis (all of an axis left empty): a
// gather per axis. fn(out, in) is called for each element of the result in order.
template <class S, class Fn>
std::vector<std::size_t> for_each_selected(S const& shape, std::vector<std::vector<std::size_t>> const& pick, Fn&& fn)
{
    const std::size_t rank = shape.size();
    std::vector<std::size_t> out_shape(rank), in_stride(rank);
    std::size_t step = 1;
    for (std::size_t d = rank; d-- > 0;) in_stride[d] = step, step *= std::size_t(shape[d]);
    for (std::size_t d = 0; d < rank; ++d) out_shape[d] = pick[d].size();
    const std::size_t total = element_count(out_shape);
    if (total == 0) return out_shape;
    std::vector<std::size_t> index(rank, 0);
    for (std::size_t o = 0; o < total; ++o) {
        std::size_t at = 0;
        for (std::size_t d = 0; d < rank; ++d) at += pick[d][index[d]] * in_stride[d];
        fn(o, at);
        for (std::size_t d = rank; d-- > 0;) {
            if (++index[d] < out_shape[d]) break;
            index[d] = 0;
        }
    }
    return out_shape;
}

} // namespace kernels
} // namespace tensorquant::inline TENSORQUANT_ABI::nn

// numpy broadcasting of two shapes (ONNX's multidirectional broadcasting): the shape of
// the result, and for each of its elements where the operands' elements are.
#pragma once

#include "../../config.hpp"

#include "geometry.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

struct broadcast_plan
{
    std::vector<std::size_t> shape;              // of the result
    std::vector<std::size_t> stride_a, stride_b; // per result axis; 0 where the operand repeats
    std::size_t size() const noexcept
    {
        std::size_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

// Row-major strides of a shape right-aligned to `rank` axes, 0 on axes of size 1 (and on
// the axes it lacks).
template <class S>
std::vector<std::size_t> broadcast_strides(S const& s, std::size_t rank)
{
    std::vector<std::size_t> r(rank, 0);
    std::size_t step = 1;
    for (std::size_t k = 0; k < s.size(); ++k) {
        const std::size_t d = s.size() - 1 - k, axis = rank - 1 - k;
        r[axis] = s[d] == 1 ? 0 : step;
        step *= s[d];
    }
    return r;
}

// The plan of a op b; a shape_error names `what` and both shapes when they do not broadcast.
template <class SA, class SB>
broadcast_plan broadcast_shapes(SA const& a, SB const& b, std::string const& what)
{
    const std::size_t rank = std::max(a.size(), b.size());
    broadcast_plan p;
    p.shape.assign(rank, 1);
    for (std::size_t k = 0; k < rank; ++k) {
        const std::size_t da = k < a.size() ? a[a.size() - 1 - k] : 1, db = k < b.size() ? b[b.size() - 1 - k] : 1;
        if (da != db && da != 1 && db != 1)
            throw shape_error(what + ": shapes " + shape_string(a) + " and " + shape_string(b) + " do not broadcast");
        p.shape[rank - 1 - k] = da == 1 ? db : da;
    }
    p.stride_a = broadcast_strides(a, rank);
    p.stride_b = broadcast_strides(b, rank);
    return p;
}

// The plan that broadcasts a to `shape` (b unused); a shape_error when a does not fit.
template <class SA, class S>
broadcast_plan broadcast_to(SA const& a, S const& shape, std::string const& what)
{
    auto p = broadcast_shapes(a, shape, what);
    if (p.shape.size() != shape.size() || !std::equal(p.shape.begin(), p.shape.end(), shape.begin()))
        throw shape_error(what + ": shape " + shape_string(a) + " does not broadcast to " + shape_string(shape));
    return p;
}

// fn(i, ia, ib) for every element i of the result in row-major order.
template <class Fn>
void for_each_broadcast(broadcast_plan const& p, Fn&& fn)
{
    const std::size_t rank = p.shape.size(), total = p.size();
    if (total == 0) return;
    if (rank == 0) return fn(std::size_t(0), std::size_t(0), std::size_t(0));
    const std::size_t inner = p.shape[rank - 1], sa = p.stride_a[rank - 1], sb = p.stride_b[rank - 1];
    std::vector<std::size_t> index(rank, 0);
    std::size_t ia = 0, ib = 0;
    for (std::size_t i = 0; i < total; i += inner) {
        for (std::size_t j = 0; j < inner; ++j) fn(i + j, ia + j * sa, ib + j * sb);
        // the next row: an odometer over the outer axes
        for (std::size_t d = rank - 1; d-- > 0;) {
            if (++index[d] < p.shape[d]) {
                ia += p.stride_a[d];
                ib += p.stride_b[d];
                break;
            }
            ia -= (p.shape[d] - 1) * p.stride_a[d];
            ib -= (p.shape[d] - 1) * p.stride_b[d];
            index[d] = 0;
        }
    }
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels

// A slice of a tensor of any rank: ONNX's Slice (starts, ends, steps per axis, clamped to
// the axis as ONNX says, so a slice to the end follows the batch), and each output of a
// Split. Data movement only: the intrinsic path rounds the input to the format and moves it.
#pragma once

#include "../../config.hpp"

#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// The indices each axis of x keeps (every one for the axes not sliced).
template <class S>
std::vector<std::vector<std::size_t>> slice_picks(S const& shape, std::vector<std::size_t> const& axes,
                                                  std::vector<slice_axis> const& ranges)
{
    std::vector<std::vector<std::size_t>> pick(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d)
        pick[d] = slice_indices({0, std::int64_t(shape[d]), 1}, std::int64_t(shape[d]));
    for (std::size_t k = 0; k < axes.size(); ++k) {
        if (axes[k] >= shape.size())
            throw shape_error("slice: axis " + std::to_string(axes[k]) + " is outside a tensor of shape " +
                              shape_string(shape));
        pick[axes[k]] = slice_indices(ranges[k], std::int64_t(shape[axes[k]]));
    }
    return pick;
}

template <class V>
tensor<V> sliced(tensor<V> const& x, std::vector<std::size_t> const& axes, std::vector<slice_axis> const& ranges)
{
    const auto pick = slice_picks(x.shape(), axes, ranges);
    std::vector<std::size_t> shape;
    for (auto const& p : pick) shape.push_back(p.size());
    tensor<V> y = tensor<V>::from_shape(shape);
    for_each_selected(x.shape(), pick, [&](std::size_t o, std::size_t i) { y.data()[o] = x.data()[i]; });
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var slice(Tape& t, typename Tape::var x, std::vector<std::size_t> const& axes,
                         std::vector<kernels::slice_axis> const& ranges)
{
    using V = typename Tape::var;
    return t.record(kernels::sliced(t.value(x), axes, ranges),
                    [x, axes, ranges](Tape& tp, V out) {
                        const auto pick = kernels::slice_picks(tp.value(x).shape(), axes, ranges);
                        auto* dx = tp.grad(x).data();
                        auto const* dy = tp.grad(out).data();
                        kernels::for_each_selected(tp.value(x).shape(), pick,
                                                   [&](std::size_t o, std::size_t i) { dx[i] += dy[o]; });
                    },
                    {x});
}

} // namespace tape_ops

struct slice_layer
{
    static constexpr std::string_view kind = "slice";
    std::vector<std::size_t> axes; // of the tensor as the network holds it
    std::vector<kernels::slice_axis> ranges;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::sliced(ctx.input(0), axes, ranges);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::sliced(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), axes,
                               ranges);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::slice(ctx.tape(), ctx.input(0), axes, ranges);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
